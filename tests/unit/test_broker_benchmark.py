"""The broker benchmark's table and arguments (the run itself needs a broker: benchmarks/broker.py)."""

from __future__ import annotations

import pytest

from benchmarks.broker import main, table
from tests.support.arguments import refused


def test_each_level_is_shown_beside_the_first_as_a_ratio():
    text = table([(500, [2.0, 2.0, 3.0]), (4000, [8.0, 9.0, 30.0])])
    assert "| 500 | 2.0 | 3.0 | 1.0 |" in text
    assert "| 4,000 | 9.0 | 30.0 | 4.5 |" in text
    assert "Floor: the same fetch with 500 batches in the partition (2.0 ms)." in text


@pytest.mark.parametrize("argv, says", [
    (["--batches", "1000,500"], "--batches: increasing"),
    (["--batches", "500,500"], "--batches: increasing"),
    (["--batches", "0,10"], "--batches: increasing"),
    (["--batches", "10,1e9"], "--batches: comma-separated whole numbers"),
    (["--batches", "500;1000"], "--batches: comma-separated whole numbers"),
    (["--batches", "10,200000"], "--batches: increasing numbers from 1 to 100,000"),
    (["--fetches", "0"], "--fetches in [1, 1000]"),
    (["--give-up-ms", "-5"], "--give-up-ms above 0"),
    (["--give-up-ms", "nan"], "--give-up-ms above 0"),
])
def test_bad_arguments_are_refused_before_any_broker_starts(argv, says, capsys):
    assert says in refused(main, argv, capsys)
