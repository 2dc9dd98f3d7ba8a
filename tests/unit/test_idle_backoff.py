"""The idle back-off of partition readers (pure arithmetic; the reader itself is tested
against the broker in tests/integration/test_partition_reader.py)."""

import doctest

import pytest

import storage.kafka
from storage.kafka import idle_pause_s
from storage.settings import ConfigError, load_settings


def test_doctests_pass():
    assert doctest.testmod(storage.kafka).failed == 0


def test_the_pause_doubles_from_the_first_to_the_most_and_never_overflows():
    assert [idle_pause_s(n, 0.1, 1.0) for n in (0, 1, 2, 3, 4, 5, 10_000)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_no_first_pause_means_no_pause():
    assert idle_pause_s(7, 0.0, 0.5) == 0.0


@pytest.mark.parametrize("value", ["-1", "61", "soon", ""])
def test_a_bad_most_pause_is_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match="(?i)consumer_idle_backoff_max_s"):
        load_settings(None, {"CONVEYOR_CONSUMER_IDLE_BACKOFF_MAX_S": value})
