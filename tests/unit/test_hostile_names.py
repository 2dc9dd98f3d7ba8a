"""Every place a user's name comes in (dataset, model, learner, stream, feature, candidate)
refuses hostile names with a typed error naming the field, and accepts exactly the names
of the rule: letters, digits, '_', '.', '-'; starting with a letter; at most 63."""

from __future__ import annotations

import re
import tomllib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.batch_rules import IngestError, validate_dataset_name
from client.data import QueryRefused, check_name
from messages.codec import DecodeFailed, decode
from messages.types import NAME_RE
from ml.learner_config import LearnerConfigError, parse_learner_config
from ml.training_config import TrainingConfigError, parse_config
from ml.transforms import NAME_PATTERN, FeatureSpecError
from ml.transforms import check_name as check_feature_name

HOSTILE = [
    "x'; DROP TABLE raw_records;--", 'a"b', "../../etc/passwd", "a/b", "..", ".hidden", "a\x00b", "a\nb", "a b",
    " a", "a\t", "名前", "A\u202eB", "$(id)", "`id`", "a;b", "a|b", "a*", "%s%s", "{0}", "a" * 64, "", "1abc",
    "-a", "_a", "a\\b", "a:b", "a\u200bb", "ａ",
]

#: Names spelled so that only the rule decides: any text, biased to near-misses.
names = st.one_of(st.text(max_size=80), st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-]{0,70}\Z"),
                  st.sampled_from(HOSTILE))


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string that spells every character (escapes for all but printable ASCII)."""
    def one(ch: str) -> str:
        if ch in '"\\':
            return "\\" + ch
        if " " <= ch <= "~":
            return ch
        return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
    return '"' + "".join(one(ch) for ch in text) + '"'


def learner_toml(name: str) -> str:
    return f'name = {toml_string(name)}\nstream = "s"\n[model]\nalgorithm = "river.logistic_regression"\n'


def training_toml(model: str) -> str:
    return (f'model = {toml_string(model)}\ndataset = "d"\n[[candidates]]\nname = "c"\n'
            'algorithm = "sklearn.logistic_regression"\n')


def stream_event(stream: str) -> bytes:
    return msgspec.json.encode({"type": "stream.event", "msg_id": "m1", "produced_at": 1.0, "stream": stream,
                                "entity_key": "k", "values": {"x": 1.0}})


def entry_points():
    """(where, call(name), the typed error, the field it must name)."""
    return [
        ("dataset (ingestion)", validate_dataset_name, IngestError, "dataset"),
        ("model (queries)", lambda n: check_name("model", n), QueryRefused, "model"),
        ("feature step name", lambda n: check_feature_name(n, "steps[0].name"), FeatureSpecError, "steps[0].name"),
        ("learner name", lambda n: parse_learner_config(learner_toml(n)), LearnerConfigError, "name"),
        ("training model", lambda n: parse_config(training_toml(n)), TrainingConfigError, "model"),
    ]


@given(text=st.text(max_size=40))
def test_the_toml_spelling_reads_back_as_the_same_text(text):
    assert tomllib.loads(f"v = {toml_string(text)}")["v"] == text


def test_the_two_layers_spell_the_same_rule():
    assert NAME_RE.pattern == NAME_PATTERN.pattern


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where, call, error, field", entry_points(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_hostile_name_is_refused_naming_the_field(where, call, error, field, name):
    with pytest.raises(error) as info:
        call(name)
    assert info.value.field == field, where


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_stream_name_on_the_wire_is_refused_by_the_decoder(name):
    with pytest.raises(DecodeFailed, match=r"\$\.stream"):
        decode(stream_event(name))


@settings(max_examples=300, deadline=None)
@given(name=names)
def test_any_name_is_accepted_exactly_when_it_follows_the_rule(name):
    follows = re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]{0,62}", name) is not None
    for where, call, error, field in entry_points():
        try:
            call(name)
            accepted = True
        except error as exc:
            assert exc.field == field, where
            accepted = False
        assert accepted == follows, (where, name)
    try:
        decode(stream_event(name))
        accepted = True
    except DecodeFailed:
        accepted = False
    assert accepted == follows, ("stream.event", name)
