"""Unit tests of a model's serving configuration (ml.serving_config): what it accepts, what
it refuses (naming the field), and how it changes the cluster's monitoring settings."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ml.serving_config
from ml.serving_config import ServingConfigError, applied, parse_serving_config
from storage.settings import Settings


def test_an_empty_config_keeps_every_cluster_setting():
    config = parse_serving_config("")
    assert config.replicas is None and applied(Settings(), config) == Settings()


def test_every_key_overrides_its_setting():
    config = parse_serving_config("replicas = 3\nlatency_objective_ms = 25.5\nfallback_rate_alert = 0.2\n"
                                  "error_rate_alert = 0.0\naccuracy_drop_margin = 0.1\nauto_rollback = false\n")
    s = applied(Settings(), config)
    assert config.replicas == 3
    assert (s.latency_objective_ms, s.fallback_rate_alert, s.error_rate_alert, s.accuracy_drop_margin,
            s.auto_rollback) == (25.5, 0.2, 0.0, 0.1, False)
    assert s.monitor_window_s == Settings().monitor_window_s      # not a serving setting: unchanged


@pytest.mark.parametrize("text, field", [
    ("replicas = 0", "replicas"), ("replicas = 17", "replicas"), ("replicas = 1.5", "replicas"),
    ("replicas = true", "replicas"), ("latency_objective_ms = 0", "latency_objective_ms"),
    ("latency_objective_ms = nan", "latency_objective_ms"), ("latency_objective_ms = inf", "latency_objective_ms"),
    ("fallback_rate_alert = -0.1", "fallback_rate_alert"), ("error_rate_alert = 2", "error_rate_alert"),
    ("accuracy_drop_margin = 'big'", "accuracy_drop_margin"), ("auto_rollback = 1", "auto_rollback"),
    ("replica = 2", "replica"), ("[replicas]\nn = 2", "replicas"), ("not toml at all", "config"),
    ("x" * 20_000, "config"), (b"\xff\xfe", "config"), ("a\x00b = 1", "config"),
])
def test_bad_values_are_refused_naming_the_field(text, field):
    with pytest.raises(ServingConfigError) as refused:
        parse_serving_config(text)
    assert refused.value.field == field, str(refused.value)


def test_a_hostile_unknown_key_is_named_printably():
    with pytest.raises(ServingConfigError) as refused:
        parse_serving_config('"a\\nb\\u202e" = 1')
    assert refused.value.field.isprintable() and "not a serving setting" in refused.value.reason


def test_text_that_is_not_text_is_refused():
    with pytest.raises(ServingConfigError) as refused:
        parse_serving_config(42)
    assert refused.value.field == "config"


@given(st.dictionaries(st.sampled_from(["replicas", "latency_objective_ms", "auto_rollback", "other"]),
                       st.one_of(st.integers(-5, 40), st.floats(allow_nan=False, allow_infinity=False, width=32),
                                 st.booleans(), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=5)),
                       max_size=4))
def test_any_table_is_either_a_config_or_a_refusal_naming_one_of_its_keys(table):
    import json

    def toml_value(v):
        return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v, ensure_ascii=False)

    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
    try:
        config = parse_serving_config(text)
    except ServingConfigError as exc:
        assert exc.field in table
    else:
        assert "other" not in table
        applied(Settings(), config)         # always applicable


def test_module_doctests_pass():
    result = doctest.testmod(ml.serving_config)
    assert result.attempted > 0 and result.failed == 0
