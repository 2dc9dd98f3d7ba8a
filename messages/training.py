"""Messages of training and evaluation.

The configuration rides as TOML text (bounded): it is small, and it is checked
again where it is consumed (``ml.training_config``). Data never rides: a run names
its feature set; a candidate is named by its id in the candidate store.

Examples
--------
>>> cmd = TrainModels(config_toml='model = "m"')
>>> cmd.feature_set_id is None
True
>>> done = ModelTrained(model="m", run_id=cmd.msg_id, candidate_id="c1", candidate="lr",
...                     algorithm="sklearn.logistic_regression", version=1, feature_set_id="ab12cd34",
...                     n_train=100, fit_s=0.5, metric="roc_auc", score=0.9, **caused_by(cmd))
>>> done.correlation_id == cmd.msg_id
True
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from messages.base import Message, MessageId, caused_by  # noqa: F401  (caused_by: doctest)
from messages.types import Name

ConfigText = Annotated[str, msgspec.Meta(min_length=1, max_length=64 * 1024, pattern=r"^[^\x00]*\Z")]
FeatureSetId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,64}\Z")]
Count = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]


class TrainModels(Message, tag="train.models"):
    """Command: train the candidates of a training configuration and evaluate them.

    ``feature_set_id``, when given, overrides the configuration's ``feature_set`` /
    ``dataset`` (a trigger names the feature set that has just been generated).
    """

    config_toml: ConfigText
    feature_set_id: FeatureSetId | None = None


class ModelTrained(Message, tag="model.trained"):
    """Event: a candidate of run ``run_id`` is trained and stored as ``version`` of ``model``."""

    model: Name
    run_id: MessageId
    candidate_id: MessageId
    candidate: Name
    algorithm: Annotated[str, msgspec.Meta(max_length=128)]
    version: Annotated[int, msgspec.Meta(ge=1)]
    feature_set_id: FeatureSetId
    n_train: Count
    fit_s: Seconds
    metric: Annotated[str, msgspec.Meta(max_length=64)]
    score: float | None = None


class ModelEvaluated(Message, tag="model.evaluated"):
    """Event: the candidates of run ``run_id`` are compared; the best is ``deployable`` when
    it beats the reference (the production version, else a baseline) by the margin."""

    model: Name
    run_id: MessageId
    best_candidate_id: MessageId | None
    metric: Annotated[str, msgspec.Meta(max_length=64)]
    score: float | None
    reference: Annotated[str, msgspec.Meta(max_length=128)]
    reference_score: float | None
    margin: float
    deployable: bool
