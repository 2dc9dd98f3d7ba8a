"""The stream learner: progressive validation equal to River's, a checkpoint-and-replay
that ends where an uninterrupted run does, delayed and unknown labels, expiry, drift."""

from __future__ import annotations

import doctest
import pickle

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing

import ml.online_learning
from ml.online_learning import StreamLearner


def model():
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


PHISHING = list(datasets.Phishing())


def test_module_doctests_pass():
    result = doctest.testmod(ml.online_learning)
    assert result.attempted > 0 and result.failed == 0


def test_progressive_accuracy_and_auc_equal_rivers_exactly():
    learner = StreamLearner(model(), task="classification")
    for i, (x, y) in enumerate(PHISHING):
        learner.predict(str(i), x)
        learner.observe(str(i), y)
    accuracy = evaluate.progressive_val_score(PHISHING, model(), metrics.Accuracy()).get()
    auc = evaluate.progressive_val_score(PHISHING, model(), metrics.ROCAUC()).get()
    assert learner.scores() == {"accuracy": accuracy, "roc_auc": auc}


def test_a_learner_restored_from_a_checkpoint_ends_like_an_uninterrupted_one():
    whole = StreamLearner(model(), task="classification")
    for i, (x, y) in enumerate(PHISHING):
        whole.predict(str(i), x)
        whole.observe(str(i), y)
    learner = StreamLearner(model(), task="classification")
    checkpoint, checkpoint_at = None, 0
    for i, (x, y) in enumerate(PHISHING):
        if i in (300, 900):                         # "killed": back to the last checkpoint, replay from there
            learner = pickle.loads(checkpoint)
            for j in range(checkpoint_at, i):
                learner.predict(str(j), PHISHING[j][0])
                learner.observe(str(j), PHISHING[j][1])
        learner.predict(str(i), x)
        learner.observe(str(i), y)
        if i % 250 == 0:
            checkpoint, checkpoint_at = pickle.dumps(learner), i + 1
    assert learner.scores() == whole.scores()
    assert [learner.model.predict_proba_one(x) for x, _ in PHISHING] == [whole.model.predict_proba_one(x)
                                                                          for x, _ in PHISHING]


def test_delayed_out_of_order_duplicate_and_unknown_labels():
    learner = StreamLearner(model(), task="classification")
    first = learner.predict("a", PHISHING[0][0])
    assert learner.predict("a", PHISHING[0][0]) == first and learner.n_predicted == 1   # a duplicate event
    learner.predict("b", PHISHING[1][0])
    assert learner.observe("b", PHISHING[1][1]).event_id == "b"                           # out of order
    assert learner.observe("a", PHISHING[0][1]) is not None
    assert learner.observe("a", True) is None and learner.observe("zzz", False) is None
    assert learner.n_unknown_labels == 2 and learner.n_learned == 2


def test_labels_that_never_come_expire_and_are_counted():
    learner = StreamLearner(model(), task="classification", label_wait_s=10, max_pending=3)
    for i in range(5):
        learner.predict(str(i), PHISHING[i][0], now=100.0 + i)
    assert learner.n_expired == 2 and list(learner.pending) == ["2", "3", "4"]
    assert learner.expire(now=113.5) == 2 and learner.n_expired == 4
    assert learner.observe("2", True) is None


def test_drift_is_detected_when_the_concept_flips():
    learner = StreamLearner(model(), task="classification")
    drifts = []
    for i, (x, y) in enumerate(PHISHING * 2):
        label = y if i < len(PHISHING) else not y      # the second pass: every label flipped
        learner.predict(str(i), x)
        if learner.observe(str(i), label).drift:
            drifts.append(i)
    assert drifts and min(drifts) >= len(PHISHING) - 50


def test_regression_learns_with_mae():
    learner = StreamLearner(linear_model.LinearRegression(), task="regression", drift="page_hinkley")
    for i in range(500):
        x = {"a": i % 7, "b": (i * 3) % 5}
        learner.predict(str(i), x)
        learner.observe(str(i), 2.0 * x["a"] - x["b"])
    assert set(learner.scores()) == {"mae", "rmse"} and learner.scores()["mae"] < 2.0
    with pytest.raises(ValueError, match="task"):
        StreamLearner(model(), task="clustering")
    with pytest.raises(ValueError, match="drift"):
        StreamLearner(model(), task="classification", drift="magic")
