"""Unit tests of how production moves (storage.route_rules): deployments, rollbacks along
the chain of earlier versions, restores, and what the fallback may answer with."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

import storage.route_rules
from storage.route_rules import HISTORY_LIMIT, fallback_versions, promoted, rollback_target, rolled_back
from storage.serving_store import Routes


def deployed(*versions: int) -> Routes:
    routes = Routes(model="m", task="classification")
    for v in versions:
        routes = promoted(routes, v)
    return routes


def test_rolling_back_again_keeps_going_back_along_the_chain_then_refuses():
    routes = deployed(1, 2, 3, 4)
    visited = []
    while (back := rollback_target(routes)) is not None:
        routes = rolled_back(routes, back)
        visited.append(routes.production)
    assert visited == [3, 2, 1]
    assert routes.demoted == [2, 3, 4] and routes.previous == 2 and routes.history == []


def test_a_rollback_never_returns_to_the_version_it_left_even_when_that_one_is_previous():
    routes = rolled_back(deployed(1, 2, 3), 2)
    assert (routes.production, routes.previous) == (2, 3)
    assert rollback_target(routes) == 1                    # not 3, which production just left


def test_deploying_a_demoted_version_again_clears_it_and_restores_the_chain():
    routes = rolled_back(deployed(1, 2), 1)
    assert routes.demoted == [2] and rollback_target(routes) is None
    routes = promoted(routes, 2)                           # an operator's restore, or a new deploy of v2
    assert (routes.production, routes.previous, routes.demoted) == (2, 1, [])
    assert rollback_target(routes) == 1


def test_redeploying_back_and_forth_keeps_one_entry_per_version():
    routes = deployed(1, 2, 1, 2, 1, 2)
    assert routes.history == [1] and routes.production == 2


def test_routes_stored_before_the_history_fall_back_on_previous():
    legacy = Routes(model="m", task="regression", production=2, previous=1)
    assert rollback_target(legacy) == 1
    assert rollback_target(Routes(model="m", task="regression", production=2, previous=1, demoted=[1])) is None
    assert rollback_target(Routes(model="m", task="regression")) is None


def test_the_history_is_bounded():
    routes = deployed(*range(1, HISTORY_LIMIT + 10))
    assert len(routes.history) == HISTORY_LIMIT and routes.history[-1] == HISTORY_LIMIT + 8


def test_the_fallback_never_answers_with_a_version_rolled_back_from():
    routes = rolled_back(deployed(1, 2), 1)
    assert fallback_versions(routes) == [1]
    assert fallback_versions(deployed(1, 2)) == [1, 2]
    assert fallback_versions(Routes(model="m", task="regression")) == []


actions = st.lists(st.one_of(st.tuples(st.just("deploy"), st.integers(1, 6)), st.just(("rollback", 0))),
                   max_size=40)


@given(actions)
def test_any_sequence_of_deploys_and_rollbacks_keeps_the_routes_consistent(steps):
    routes = Routes(model="m", task="classification")
    ever_production: set[int] = set()
    for action, version in steps:
        if action == "deploy":
            routes = promoted(routes, version)
        else:
            back = rollback_target(routes)
            if back is None:
                continue
            assert back in ever_production and back not in routes.demoted and back != routes.production
            left = routes.production
            routes = rolled_back(routes, back)
            assert left in routes.demoted and routes.previous == left
        ever_production.add(routes.production)
        assert routes.production not in routes.demoted
        assert routes.production not in routes.history
        assert len(set(routes.history)) == len(routes.history) <= HISTORY_LIMIT
        assert set(routes.history) <= ever_production
        assert not set(fallback_versions(routes)) & set(routes.demoted)


def test_module_doctests_pass():
    result = doctest.testmod(storage.route_rules)
    assert result.attempted > 0 and result.failed == 0
