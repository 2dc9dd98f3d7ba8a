"""The learner configuration: every refusal names its field, nothing unusable gets through."""

from __future__ import annotations

import doctest

import pytest

import ml.learner_config
from ml.learner_config import LearnerConfigError, parse_learner_config

BASE = 'name = "phish"\nstream = "phishing"\n'
MODEL = '[model]\nalgorithm = "river.logistic_regression"\n'


def test_module_doctests_pass():
    result = doctest.testmod(ml.learner_config)
    assert result.attempted > 0 and result.failed == 0


def test_defaults_and_task_from_the_algorithm():
    config = parse_learner_config(BASE + MODEL)
    assert (config.task, config.metric, config.label, config.features, config.challenger, config.drift) == \
        ("classification", "accuracy", None, [], None, "adwin")
    regression = parse_learner_config(BASE + '[model]\nalgorithm = "river.linear_regression"\n')
    assert (regression.task, regression.metric, regression.higher_is_better) == ("regression", "mae", False)


@pytest.mark.parametrize("text, field", [
    ('name = "x\'; DROP TABLE learners;--"\nstream = "s"\n' + MODEL, "name"),
    ('name = "../../etc"\nstream = "s"\n' + MODEL, "name"),
    ('name = "x"\nstream = ""\n' + MODEL, "stream"),
    (BASE, "model"),
    (BASE + '[model]\nalgorithm = "no.such"\n', "model.algorithm"),
    (BASE + '[model]\nalgorithm = "sklearn.random_forest"\n', "model.algorithm"),
    (BASE + '[model]\nalgorithm = "river.snarimax"\nparams = { p = 1, d = 0, q = 0 }\n', "model.algorithm"),
    (BASE + '[model]\nalgorithm = "river.logistic_regression"\nparams = { lr = "fast" }\n', "model.params.lr"),
    (BASE + '[model]\nalgorithm = "river.logistic_regression"\nparams = { lr = -1.0 }\n', "model.params.lr"),
    (BASE + '[model]\nalgorithm = "river.logistic_regression"\nparams = { nope = 1 }\n', "model.params.nope"),
    (BASE + 'task = "regression"\n' + MODEL, "task"),
    (BASE + MODEL + '[challenger]\nalgorithm = "river.linear_regression"\n', "challenger.algorithm"),
    (BASE + 'features = ["a", "a"]\n' + MODEL, "features"),
    (BASE + 'label = "y"\nfeatures = ["y"]\n' + MODEL, "features[0]"),
    (BASE + 'features = ["bad\\u0000"]\n' + MODEL, "features[0]"),
    (BASE + 'drift = "magic"\n' + MODEL, "drift"),
    (BASE + 'label = "y"\nentity_aggregates = ["y"]\n' + MODEL, "entity_aggregates[0]"),
    (BASE + 'entity_aggregates = ["a", "a"]\n' + MODEL, "entity_aggregates"),
    (BASE + 'label_wait_s = 0\n' + MODEL, "label_wait_s"),
    (BASE + 'max_pending = 0\n' + MODEL, "max_pending"),
    (BASE + MODEL + '[promotion]\nwindow = 1\n', "promotion.window"),
    (BASE + MODEL + '[promotion]\nmargin = -0.1\n', "promotion.margin"),
    (BASE + 'surprise = 1\n' + MODEL, "config"),
    (BASE + 'name = "twice"\n' + MODEL, "config"),
    ("not toml at all = = =", "config"),
    (b"\xff\xfe" + (BASE + MODEL).encode(), "config"),
])
def test_refusals_name_the_field(text, field):
    with pytest.raises(LearnerConfigError) as caught:
        parse_learner_config(text)
    assert caught.value.field == field or (field == "config" and caught.value.field in ("config", "surprise")), \
        str(caught.value)


def test_oversized_config_is_refused_before_parsing():
    with pytest.raises(LearnerConfigError, match="exceeds the limit") as caught:
        parse_learner_config(BASE + MODEL + "#" * 20_000)
    assert caught.value.field == "config"


def test_the_error_survives_pickling_for_ray():
    import pickle

    err = pickle.loads(pickle.dumps(LearnerConfigError("model.algorithm", "why")))
    assert (err.field, err.reason) == ("model.algorithm", "why")
