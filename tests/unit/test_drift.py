"""Unit tests of ml.drift, checked against scipy and numpy."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import ml.drift as drift
from ml.drift import Drift, bin_shares, feature_drift, fit_reference, ks_2samp, psi, quantile_edges


def test_doctests():
    assert doctest.testmod(drift).failed == 0


@pytest.mark.parametrize("n1,n2,shift", [(50, 60, 0.0), (500, 200, 0.3), (5000, 3000, 0.05), (30, 3000, 1.0)])
def test_ks_equals_scipy_asymptotic(n1, n2, shift):
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(loc=shift, size=n2)
    expected = stats.ks_2samp(a, b, method="asymp")
    d, p = ks_2samp(np.sort(a), b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=40), st.lists(st.integers(-5, 5), min_size=1, max_size=40))
def test_ks_statistic_equals_scipy_with_ties(a, b):
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    assert ks_2samp(np.sort(a), b)[0] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_psi_equals_its_formula_over_numpy_histograms():
    rng = np.random.default_rng(1)
    ref, live = rng.normal(size=10_000), rng.normal(loc=0.5, scale=1.3, size=4_000)
    edges = quantile_edges(ref, 10)
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    e = np.histogram(ref, full)[0] / ref.size
    a = np.histogram(live, full)[0] / live.size
    assert bin_shares(ref, edges) == pytest.approx(e, abs=1e-12)
    assert psi(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-12)
    assert e == pytest.approx(np.full(10, 0.1), abs=1e-3)   # equal-frequency bins


def test_psi_is_zero_for_equal_shares_and_symmetric():
    e, a = np.array([0.2, 0.3, 0.5]), np.array([0.4, 0.4, 0.2])
    assert psi(e, e) == 0.0
    assert psi(e, a) == pytest.approx(psi(a, e))


def test_an_empty_bin_gives_a_finite_psi():
    assert np.isfinite(psi(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])))


def test_shifted_columns_drift_and_unshifted_ones_do_not():
    rng = np.random.default_rng(2)
    ref = fit_reference(rng.normal(size=(20_000, 3)), ["a", "b", "c"])
    live = rng.normal(size=(2_000, 3))
    live[:, 1] += 2.0
    found = feature_drift(ref, live)
    assert found["a"].level == found["c"].level == "stable" and found["b"].level == "significant"
    assert found["b"].ks > 0.5 and found["b"].p_value < 1e-12 and found["a"].p_value > 1e-3


def test_a_constant_or_discrete_feature_has_fewer_bins_and_still_works():
    ref = fit_reference(np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), ["const", "flag"])
    assert len(ref.edges[0]) == 1
    same = feature_drift(ref, np.array([[0.0, 1.0], [0.0, 0.0]]))
    assert same["const"] == Drift(psi=0.0, ks=0.0, p_value=1.0) and same["flag"].psi == 0.0
    assert feature_drift(ref, np.array([[0.0, 1.0]] * 50))["flag"].psi > 1.0


def test_the_ks_sample_is_bounded_but_bins_use_every_row():
    ref = fit_reference(np.arange(20_000.0).reshape(-1, 1), ["x"], max_sample=1000)
    assert ref.sorted_sample[0].size == 1000 and ref.n_rows == 20_000
    assert np.all(np.diff(ref.sorted_sample[0]) > 0)


@pytest.mark.parametrize("call,field", [
    (lambda: quantile_edges(np.array([1.0]), 1), "n_bins"),
    (lambda: quantile_edges(np.array([]), 10), "reference"),
    (lambda: fit_reference(np.zeros((3, 2)), ["a"]), "names"),
    (lambda: fit_reference(np.zeros((0, 1)), ["a"]), "X"),
    (lambda: feature_drift(fit_reference(np.zeros((3, 2)), ["a", "b"]), np.zeros((2, 3))), "live"),
])
def test_bad_input_names_the_argument(call, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        call()


def test_empty_live_sample_means_no_evidence():
    assert ks_2samp(np.array([1.0]), np.array([])) == (0.0, 1.0)
