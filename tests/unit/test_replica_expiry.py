"""A replica drops a request its caller gave up on (past ``answer_by`` and the grace)
instead of predicting it, and answers the rest; Ray-free."""

from __future__ import annotations

import time

import numpy as np
import pytest

from actors.serving import EXPIRY_GRACE_S, ModelReplica, RequestExpired, ScoringError
from storage.settings import load_settings


class Served:
    """Stands in for a loaded version: counts what it predicted."""

    def __init__(self) -> None:
        self.predicted = 0

    def vector_of(self, features, entity_key=None):
        return np.asarray([float(v) for v in features.values()])

    def answer(self, vector):
        self.predicted += 1
        return {"score": float(vector.sum()), "label": None, "version": 1}


def replica() -> ModelReplica:
    r = ModelReplica(load_settings(None, {}), "m", 1)
    r.served = Served()
    return r


def never(coroutine):
    raise AssertionError("no online store read expected")


def test_a_request_within_its_time_or_the_grace_is_answered():
    r = replica()
    assert r.score_now({"features": {"a": 1.0}, "answer_by": time.time() + 1}, never)["score"] == 1.0
    late_but_in_grace = {"features": {"a": 2.0}, "answer_by": time.time() - EXPIRY_GRACE_S / 2}
    assert r.score_now(late_but_in_grace, never)["score"] == 2.0
    assert r.score_now({"features": {"a": 3.0}}, never)["score"] == 3.0      # no answer_by: always answered
    assert r.stats() == {"n_scored": 3, "n_expired": 0, "loaded": True}


def test_a_request_its_caller_gave_up_on_is_dropped_unpredicted():
    r = replica()
    with pytest.raises(RequestExpired, match="stopped waiting"):
        r.score_now({"features": {"a": 1.0}, "answer_by": time.time() - EXPIRY_GRACE_S - 1}, never)
    assert r.served.predicted == 0 and r.stats()["n_expired"] == 1


@pytest.mark.parametrize("request_", [None, [1, 2], "features", 7])
def test_a_request_that_is_no_mapping_is_refused_typed(request_):
    with pytest.raises(ScoringError) as refused:
        replica().score_now(request_, never)
    assert refused.value.field == "features"
