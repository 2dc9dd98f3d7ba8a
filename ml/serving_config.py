"""A model's serving configuration (``serving.toml``), versioned in the configuration
service: how many replicas a deployment starts by default and the monitoring objectives
its automatic rollback holds the model to. A key left out keeps the cluster's setting.
Everything is checked here; an error names the field.

Examples
--------
>>> config = parse_serving_config('replicas = 1\\nlatency_objective_ms = 50\\nauto_rollback = false')
>>> config.replicas, config.latency_objective_ms, config.fallback_rate_alert
(1, 50.0, None)
>>> from storage.settings import Settings
>>> s = applied(Settings(), config)
>>> s.latency_objective_ms, s.auto_rollback, s.error_rate_alert == Settings().error_rate_alert
(50.0, False, True)
>>> parse_serving_config('replicas = 0')
Traceback (most recent call last):
...
ml.serving_config.ServingConfigError: replicas: Expected `int` >= 1
>>> parse_serving_config('replica = 2')
Traceback (most recent call last):
...
ml.serving_config.ServingConfigError: replica: not a serving setting (replicas, latency_objective_ms, fallback_rate_alert, error_rate_alert, accuracy_drop_margin, auto_rollback)
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ml.errors import FieldError, decode_toml

__all__ = ["ServingConfig", "ServingConfigError", "applied", "parse_serving_config"]

MAX_CONFIG_BYTES = 16 * 1024

Share = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ServingConfigError(FieldError):
    """A serving configuration that cannot be used; ``field`` names the culprit."""


class ServingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Replicas a deployment of the model starts when the call names none.
    replicas: Annotated[int, msgspec.Meta(ge=1, le=16)] | None = None
    #: p99 latency over the monitor's window above which production is rolled back.
    latency_objective_ms: Annotated[float, msgspec.Meta(gt=0, le=60_000)] | None = None
    #: Shares of answers from a fallback, and of failed requests, that raise an alert.
    fallback_rate_alert: Share | None = None
    error_rate_alert: Share | None = None
    #: Accuracy below the rollback target's by more than this rolls production back.
    accuracy_drop_margin: Share | None = None
    auto_rollback: bool | None = None


#: The settings a serving configuration may override (the same names as in Settings).
MONITORING_FIELDS = ("latency_objective_ms", "fallback_rate_alert", "error_rate_alert", "accuracy_drop_margin",
                     "auto_rollback")


def parse_serving_config(text: str | bytes) -> ServingConfig:
    """A checked :class:`ServingConfig` from TOML text; :class:`ServingConfigError` names the field."""
    if not isinstance(text, (str, bytes)):
        raise ServingConfigError("config", f"TOML text; got {type(text).__name__}")
    return decode_toml(text, ServingConfig, ServingConfigError, MAX_CONFIG_BYTES, _where)


def applied(settings, config: ServingConfig | None):
    """``settings`` with the monitoring objectives ``config`` sets (the others unchanged)."""
    if config is None:
        return settings
    changes = {f: getattr(config, f) for f in MONITORING_FIELDS if getattr(config, f) is not None}
    return msgspec.structs.replace(settings, **changes) if changes else settings


def _where(message: str) -> tuple[str, str]:
    """(field, reason) of a msgspec validation message."""
    reason, _, at = message.partition(" - at `$")
    if reason.startswith("Object contains unknown field `"):
        field = "".join(c if c.isprintable() else "?" for c in reason.split("`")[1][:64])
        return field, f"not a serving setting ({', '.join(ServingConfig.__struct_fields__)})"
    return at.rstrip("`").lstrip(".") or "config", reason
