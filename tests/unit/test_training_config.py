"""The training configuration: parsing, checking against the registries, and the search
expansion; every refusal names its field."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.training_config
from ml.training_config import TrainingConfigError, parse_config, plan_training

HEAD = 'model = "m"\ndataset = "d"\n'


def plan(text: str):
    return plan_training(parse_config(HEAD + text))


def refused(text: str, head: str = HEAD) -> TrainingConfigError:
    with pytest.raises(TrainingConfigError) as info:
        plan_training(parse_config(head + text))
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"
    return info.value


def test_module_doctests_pass():
    result = doctest.testmod(ml.training_config)
    assert result.attempted > 0 and result.failed == 0


def test_defaults_by_task_and_a_plain_candidate_is_one_trial():
    p = plan('[[candidates]]\nname = "lr"\nalgorithm = "sklearn.logistic_regression"\nparams = { C = 2.0 }\n')
    assert (p.task, p.metric) == ("classification", "roc_auc")
    [c] = p.candidates
    assert c.trials == ({"C": 2.0},) and not c.searched and (c.partitions, c.blocks) == (1, 1)
    assert plan('[[candidates]]\nname = "ols"\nalgorithm = "sklearn.linear_regression"\n').metric == "rmse"


def test_grid_expands_to_every_combination_with_the_fixed_params():
    p = plan('[[candidates]]\nname = "f"\nalgorithm = "sklearn.random_forest"\nparams = { n_estimators = 5 }\n'
             'grid = { max_depth = [2, 4], criterion = ["gini", "entropy"] }\n')
    trials = p.candidates[0].trials
    assert len(trials) == 4 and all(t["n_estimators"] == 5 for t in trials)
    assert {(t["max_depth"], t["criterion"]) for t in trials} == {(2, "gini"), (2, "entropy"), (4, "gini"),
                                                                   (4, "entropy")}


def test_random_search_draws_n_iter_values_in_range_and_the_same_seed_gives_the_same_draws():
    text = ('seed = 11\n[[candidates]]\nname = "lr"\nalgorithm = "sklearn.logistic_regression"\nn_iter = 20\n'
            'distributions = { C = { low = 0.01, high = 100.0, log = true }, max_iter = { low = 50, high = 60 },'
            ' solver = ["lbfgs", "liblinear"] }\n')
    first, second = plan(text).candidates[0].trials, plan(text).candidates[0].trials
    assert first == second and len(first) == 20
    assert all(0.01 <= t["C"] <= 100.0 and 50 <= t["max_iter"] <= 60 and isinstance(t["max_iter"], int)
               and t["solver"] in ("lbfgs", "liblinear") for t in first)
    assert len({t["C"] for t in first}) == 20
    other = plan(text.replace("seed = 11", "seed = 12")).candidates[0].trials
    assert other != first


@pytest.mark.parametrize("text, field", [
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.svm"\n', "candidates[0].algorithm"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\nparams = { depth = 3 }\n',
     "candidates[0].params.depth"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\nparams = { max_depth = 2.5 }\n',
     "candidates[0].params.max_depth"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\ngrid = { max_depth = [3, 0] }\n',
     "candidates[0].grid.max_depth"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\ngrid = { max_depth = [] }\n',
     "candidates[0].grid.max_depth"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\nparams = { max_depth = 3 }\n'
     'grid = { max_depth = [2] }\n', "candidates[0].grid.max_depth"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.logistic_regression"\n'
     'distributions = { C = { low = 5.0, high = 1.0 } }\n', "candidates[0].distributions.C"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.logistic_regression"\n'
     'distributions = { C = { low = 0.0, high = 1.0, log = true } }\n', "candidates[0].distributions.C"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.logistic_regression"\n'
     'distributions = { C = { lo = 0.0 } }\n', "candidates[0].distributions.C"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.logistic_regression"\nn_iter = 0\n'
     'distributions = { C = [1.0] }\n', "candidates[0].n_iter"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.random_forest"\npartitions = 2\n', "candidates[0].partitions"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.random_forest"\nblocks = 2\n', "candidates[0].blocks"),
    ('[[candidates]]\nname = "a"\nalgorithm = "river.logistic_regression"\npartitions = 0\n',
     "candidates[0].partitions"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n[[candidates]]\nname = "a"\n'
     'algorithm = "sklearn.decision_tree"\n', "candidates[1].name"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n[[candidates]]\nname = "b"\n'
     'algorithm = "sklearn.linear_regression"\n', "candidates[1].algorithm"),
    ('metric = "rmse"\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "metric"),
    ('metric = "confusion_matrix"\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "metric"),
    ('metric = "nope"\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "metric"),
    ('margin = -0.1\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "margin"),
    ('margin = nan\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "margin"),
    ('[split]\nratio = 1.0\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', "split.ratio"),
    ('[split]\nstrategy = "magic"\n[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n',
     "split.strategy"),
    ('[[candidates]]\nname = "../etc"\nalgorithm = "sklearn.decision_tree"\n', "candidates[0].name"),
    ('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\nextra = 1\n', "candidates[0]"),
    ('[[candidates]]\nname = "a"\nalgorithm = 3\n', "candidates[0].algorithm"),
    ('candidates = []\n', "candidates"),
    ('unknown_key = 1\n', "config"),
])
def test_bad_values_are_refused_naming_the_field(text, field):
    assert refused(text).field == field


@pytest.mark.parametrize("head, field", [
    ('model = "m"\n', "feature_set"),
    ('model = "m"\ndataset = "d"\nfeature_set = "0123abcd"\n', "feature_set"),
    ('model = "m"\nfeature_set = "XYZ"\n', "feature_set"),
    ('model = "m"\ndataset = "../../etc/passwd"\n', "dataset"),
    ('model = "a b"\ndataset = "d"\n', "model"),
    ('model = "x" \ndataset = "d\'; DROP TABLE x; --"\n', "dataset"),
    ('dataset = "d"\n', "config"),
])
def test_bad_heads_are_refused(head, field):
    assert refused('[[candidates]]\nname = "a"\nalgorithm = "sklearn.decision_tree"\n', head).field == field


def test_oversized_and_malformed_text_is_refused():
    assert refused("# " + "x" * 70_000).field == "config"
    with pytest.raises(TrainingConfigError, match="not valid TOML"):
        parse_config("model = [")
    with pytest.raises(TrainingConfigError):
        parse_config(b"\xff\xfe")


def test_a_grid_too_large_is_refused():
    values = "[" + ", ".join(str(i) for i in range(1, 20)) + "]"
    assert refused(f'[[candidates]]\nname = "a"\nalgorithm = "sklearn.random_forest"\n'
                   f'grid = {{ n_estimators = {values}, max_depth = {values} }}\n').field == "candidates[0].grid"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_either_parses_or_is_refused_with_a_typed_error(text):
    try:
        plan_training(parse_config(text))
    except TrainingConfigError as exc:
        assert exc.field and exc.reason
