"""Online learning from the command line: a learner created from its TOML file, River's
Phishing replayed as events with `stream`, the learner's progressive scores shown, a
prediction from the live learner, and bad input refused with the field named."""

from __future__ import annotations

import json
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

#: River's progressive_val_score of StandardScaler | LogisticRegression on Phishing (DESIGN §9).
PHISHING_ACCURACY = "accuracy 0.8928"


def test_create_stream_show_score_and_remove(cluster, tmp_path):
    name, stream = f"cli-{uuid.uuid4().hex[:6]}", f"cli-phish-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "learner.toml"
    config.write_text(f'name = "{name}"\nstream = "{stream}"\nlabel = "label"\n'
                      '[model]\nalgorithm = "river.logistic_regression"\n')
    created = cluster.run("learners", "create", "--config", str(config), check=True)
    assert f"learner {name} revision 1 learns stream {stream}" in created.stdout
    streamed = cluster.run("stream", "phishing", "--stream", stream, "--entity-key", "one", check=True)
    assert "done: 1,250 events published" in streamed.stdout
    for _ in range(120):
        shown = cluster.run("learners", "show", name, "--json", check=True)
        report = json.loads(shown.stdout.strip().splitlines()[-1])
        if sum(part["n_learned"] for part in report.values()) >= 1250:
            break
        time.sleep(0.5)
    text = cluster.run("learners", "show", name, check=True).stdout
    assert PHISHING_ACCURACY in text and "learned 1250" in text
    x = {"empty_server_form_handler": 1.0, "popup_window": 0.5, "https": 1.0, "request_from_other_domain": 0.0,
         "anchor_from_other_domain": 0.0, "is_popular": 0.5, "long_url": 1.0, "age_of_domain": 1, "ip_in_url": 0}
    scored = cluster.run("score", name, "--online", "--features", json.dumps(x), "--entity-key", "one", check=True)
    answer = json.loads([line for line in scored.stdout.splitlines() if line.startswith("{")][-1])
    assert answer["answered_by"] == "online" and answer["label"] in ("True", "False")
    assert name in cluster.run("learners", "list", check=True).stdout
    assert "removed" in cluster.run("learners", "remove", name, check=True).stdout
    assert name not in cluster.run("learners", "list", check=True).stdout


@pytest.mark.parametrize("args, message", [
    (("stream", "no-such-dataset.csv"), "dataset: 'no-such-dataset.csv' is neither a bundled dataset"),
    (("stream", "phishing", "--rate", "-1"), "--rate"),
    (("stream", "phishing", "--stream", "bad name;"), "stream:"),
    (("learners", "show", "ghost-learner"), "no learner 'ghost-learner'"),
])
def test_bad_input_is_refused_naming_the_field(cluster, args, message):
    done = cluster.run(*args)
    assert done.returncode in (1, 2) and message in done.stderr, done.stderr


def test_a_bad_learner_config_is_refused_with_its_field(cluster, tmp_path):
    config = tmp_path / "learner.toml"
    config.write_text('name = "x"\nstream = "s"\n[model]\nalgorithm = "sklearn.random_forest"\n')
    done = cluster.run("learners", "create", "--config", str(config))
    assert done.returncode == 2 and "model.algorithm:" in done.stderr
