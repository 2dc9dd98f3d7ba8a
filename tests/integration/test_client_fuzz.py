"""Every client call that takes a name, an id, a version or a count, fuzzed (hypothesis) with
values of any type against the session cluster: it answers, or raises a typed error that
names the field (``.field`` and ``.reason``) or says what is missing (a ClientError); never
a TypeError, a KeyError, a database error or anything else from deeper down."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_hostile_names import HOSTILE

pytestmark = pytest.mark.integration

#: Any value a caller might pass by mistake or on purpose.
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=80),
    st.sampled_from(HOSTILE), st.binary(max_size=20), st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-]{0,70}\Z"), st.from_regex(r"\A[0-9a-f]{6,70}\Z"))

#: (call name, how it is called with the fuzzed value v).
CALLS = {
    "candidates": lambda c, v: c.candidates(v),
    "candidate": lambda c, v: c.candidate(v),
    "candidate version": lambda c, v: c.candidate("fuzz-model", v),
    "deployments": lambda c, v: c.deployments(v),
    "lineage": lambda c, v: c.lineage(v, 1),
    "lineage version": lambda c, v: c.lineage("fuzz-model", v),
    "raw_batches": lambda c, v: c.raw_batches(v),
    "raw_batches limit": lambda c, v: c.raw_batches(None, limit=v),
    "raw_rejects": lambda c, v: c.raw_rejects(v),
    "feature_sets": lambda c, v: c.feature_sets(v),
    "score_records": lambda c, v: c.score_records(v),
    "score_records request_ids": lambda c, v: c.score_records("fuzz-model", request_ids=v),
    "score_counts version": lambda c, v: c.score_counts("fuzz-model", v),
    "score_jobs candidate": lambda c, v: c.score_jobs(None, candidate_id=v),
    "monitoring": lambda c, v: c.monitoring(v),
    "alerts limit": lambda c, v: c.alerts(None, v),
    "audit subject": lambda c, v: c.audit(subject=v),
    "config name": lambda c, v: c.config("serving", v),
    "config kind": lambda c, v: c.config(v, "fuzz-model"),
    "online_features": lambda c, v: c.online_features(v, "k1"),
    "online_features key": lambda c, v: c.online_features("fuzz-data", v),
    "remove_learner": lambda c, v: c.remove_learner(v),
    "learner_report": lambda c, v: c.learner_report(v),
    "get_score": lambda c, v: c.get_score(v),
    "batch_score_progress": lambda c, v: c.batch_score_progress(v),
    "ingest_progress": lambda c, v: c.ingest_progress(v),
    "training_progress": lambda c, v: c.training_progress(v),
    "score": lambda c, v: c.score(v, {"x": 1.0}, deadline_ms=200),
    "score deadline": lambda c, v: c.score("fuzz-model", {"x": 1.0}, deadline_ms=v),
    "score features": lambda c, v: c.score("fuzz-model", v, deadline_ms=200),
    "deploy version": lambda c, v: c.deploy("fuzz-model", v),
    "batch_score version": lambda c, v: c.batch_score("fuzz-model", v),
    "define_join sources": lambda c, v: c.define_join("fuzz-join", v),
    "unschedule": lambda c, v: c.unschedule(v),
}


def _typed(exc: BaseException) -> bool:
    from client.errors import ClientError

    named = isinstance(getattr(exc, "field", None), str) and isinstance(getattr(exc, "reason", None), str)
    return named or isinstance(exc, ClientError)


@pytest.fixture(scope="module")
def call_with(settings):
    from client.connection import Conveyor

    def call(name: str, value) -> None:
        async def run() -> None:
            async with Conveyor.connect(settings) as conveyor:
                try:
                    await asyncio.wait_for(CALLS[name](conveyor, value), timeout=30)
                except Exception as exc:  # noqa: BLE001 - whatever comes out is what the test judges
                    assert _typed(exc), f"{name}({value!r}) raised {type(exc).__name__}: {exc}"[:600]

        asyncio.run(run())

    return call


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=anything)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_fuzzed_argument_is_answered_or_refused_with_a_typed_error(call_with, name, value):
    call_with(name, value)
