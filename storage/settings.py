"""One typed settings object: a TOML file overridden by ``CONVEYOR_*`` variables.

Every setting has one flat name; ``postgres_dsn`` is ``postgres_dsn = "..."`` in
the file and ``CONVEYOR_POSTGRES_DSN`` in the environment. An unknown key or a
bad value raises :class:`ConfigError` naming the key, where it came from, and
the reason. Secrets are masked by ``repr`` and :meth:`Settings.redacted`.

Examples
--------
>>> s = load_settings(config_path=None, environ={"CONVEYOR_TOPIC_PARTITIONS": "4"})
>>> s.topic_partitions
4
>>> try:
...     load_settings(config_path=None, environ={"CONVEYOR_TOPIC_PARTITIONS": "many"})
... except ConfigError as e:
...     print(e)
CONVEYOR_TOPIC_PARTITIONS: Expected `int`, got `str`
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl
from typing import Annotated, Any, Mapping

import msgspec

ENV_PREFIX = "CONVEYOR_"
#: Variables with the prefix that are not settings.
ENV_NOT_SETTINGS = frozenset({"CONVEYOR_CONFIG"})
SECRET_FIELDS = frozenset({"postgres_dsn", "redis_url", "signing_key"})
#: Secrets that are never shown in any form.
OPAQUE_SECRETS = frozenset({"signing_key"})
SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "secret", "token", "sslpassword", "key"})

Positive = Annotated[float, msgspec.Meta(gt=0, le=86_400)]
Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ConfigError(ValueError):
    """A setting that stops start-up: ``key`` names it, ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything Conveyor reads from its configuration."""

    cluster_name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,30}\Z")] = "conveyor"
    state_dir: Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=r"^[^\x00]+\Z")] = ".conveyor"
    # External services; when unset, `cluster start` runs an embedded one.
    postgres_dsn: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    ray_address: str | None = None
    # Broker.
    topic_partitions: Annotated[int, msgspec.Meta(ge=1, le=256)] = 2
    ingest_workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    batch_score_workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    #: Rows preparation transforms per piece: PostgreSQL stores one while the next is made.
    prepare_chunk_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20000
    #: Rows a batch scorer predicts and stores per transaction.
    batch_score_chunk: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20000
    #: How long batch predictions are served from the cache to online callers.
    prediction_cache_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=30 * 86_400)] = 3600
    #: Candidates of a run training at once (0: one per CPU of the Ray cluster); the others
    #: wait for a slot, in the config's order. More fits than CPUs only share the CPUs.
    training_parallel_candidates: Annotated[int, msgspec.Meta(ge=0, le=1024)] = 0
    #: Candidate actors kept started (libraries imported) so a training run does not wait for one.
    training_warm_actors: Annotated[int, msgspec.Meta(ge=0, le=32)] = 2
    #: ... and up to this many, when runs with more candidates come (one ready per candidate).
    training_warm_actors_max: Annotated[int, msgspec.Meta(ge=0, le=32)] = 4
    #: Online learner partitions checkpoint their models every N events or T seconds.
    learner_checkpoint_every_n: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 5000
    learner_checkpoint_every_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    online_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=365 * 86_400)] = 7 * 86_400
    kafka_fetch_max_wait_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    kafka_max_batch: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 500
    # An idle partition worker pauses its partition this long after an empty read, doubling
    # the pause after every further one up to the max: the first record after a quiet spell
    # waits up to the max unless its publisher rang the topic's doorbell (the client and the
    # outbox relay do: storage.doorbell), which ends the pause at once (0 keeps fetching every
    # fetch_max_wait_ms: most idle CPU; 25 actors cost about a core at 0.1 s without doubling).
    # An idle full cluster used 45-53 % of a core with a max of 0.5 s, 38-39 % with 2 s (the
    # broker 4.8 % -> 1.2 %): records from a producer that does not ring wait up to the max.
    consumer_idle_backoff_s: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.1
    consumer_idle_backoff_max_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0
    # Supervision.
    heartbeat_interval_s: Positive = 0.5
    max_missed_heartbeats: Count = 3
    #: A running worker on the supervisor's own node is asked for a heartbeat (a Ray call)
    #: every n-th check only; its process is looked at (exited, stopped by a signal) at every
    #: check, and a worker that fails tells its supervisor at once. Pinging every child at
    #: every check cost ~0.13-0.17 of 2 cores on an idle tree here. 1 pings at every check.
    n_checks_per_ping: Count = 4
    restart_intensity: Count = 5
    restart_period_s: Positive = 30.0
    backoff_base_s: Annotated[float, msgspec.Meta(ge=0, le=3_600)] = 0.05
    backoff_max_s: Positive = 5.0
    #: Worker processes kept started ahead of a failure (libraries imported): a restarted
    #: worker takes one instead of waiting for a new process (supervisors.spares). Each costs
    #: its memory (~0.2 GiB with River) and a few seconds of CPU to start, the first ones
    #: ``spare_workers_after_s`` after the tree's start.
    spare_workers: Annotated[int, msgspec.Meta(ge=0, le=16)] = 2
    spare_workers_after_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 20.0
    #: Serving replica processes the deployment manager keeps started (scikit-learn imported)
    #: while any version is live: a replica that dies is loaded into one instead of a new process.
    spare_replicas: Annotated[int, msgspec.Meta(ge=0, le=16)] = 1
    #: A child not running this long after its start is restarted; `cluster start` gives up
    #: when no further actor came up for this long (or after three times it in all).
    start_timeout_s: Positive = 60.0
    #: Modules every training, serving and preparation process imports first (comma-separated),
    #: e.g. to register the user's own algorithms (ml.algorithms.register_algorithm) or feature
    #: steps (ml.transforms.register_transform); they must be importable by the cluster's
    #: workers (on PYTHONPATH when the cluster starts).
    plugins: Annotated[str, msgspec.Meta(max_length=1024,
                                         pattern=r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                                                 r"(,[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)*)?\Z")] = ""
    # Monitoring.
    #: Score records carry the caller's raw features, so their drift is measured (entity-key
    #: requests are measured from the online store either way).
    monitor_features: bool = True
    #: Latency, fallback and error figures cover the answers of this many seconds.
    monitor_window_s: Positive = 60.0
    #: The monitor stores figures, exports metrics and checks thresholds this often.
    monitor_interval_s: Positive = 2.0
    #: Answers (or input vectors) in the window before a version is judged.
    monitor_min_samples: Count = 100
    #: The newest input vectors per version compared with the training reference.
    monitor_drift_sample: Count = 2000
    #: A p99 latency above this over the window raises a `latency` alert (the default deadline).
    latency_objective_ms: Positive = 100.0
    #: A share of fallback answers (or of failed primaries) above this raises an alert.
    fallback_rate_alert: Share = 0.05
    error_rate_alert: Share = 0.01
    #: A PSI above this, of any feature or of the predictions, raises a drift alert.
    drift_psi_alert: Annotated[float, msgspec.Meta(gt=0, le=100)] = 0.25
    #: Production goes back along the chain of earlier versions (never to one it was rolled
    #: back from) when it breaks its latency objective, its fallback rate, or its accuracy
    #: falls below that of the version it would go back to by more than
    #: ``accuracy_drop_margin`` (outcomes joined for both).
    auto_rollback: bool = True
    accuracy_drop_margin: Share = 0.05
    # Security and logging.
    signing_key: str | None = None
    log_level: Annotated[str, msgspec.Meta(pattern=r"^(debug|info|warning|error)\Z")] = "info"

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({fields})"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret masked (safe to log or print)."""
        out = msgspec.structs.asdict(self)
        for key in SECRET_FIELDS:
            if out[key] is not None:
                out[key] = "***" if key in OPAQUE_SECRETS else mask_secret(out[key])
        return out

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser().resolve()


def mask_secret(value: str) -> str:
    """A URL with its password (in the user part or the query) masked; anything that is
    not a URL masked whole.

    >>> mask_secret("postgresql://app:hunter2@db:5432/x")
    'postgresql://app:***@db:5432/x'
    >>> mask_secret("postgresql://postgres@/db?host=/run/pg")
    'postgresql://postgres@/db?host=/run/pg'
    >>> mask_secret("redis://cache:6379/0?password=hunter2")
    'redis://cache:6379/0?password=***'
    >>> mask_secret("just-a-key")
    '***'
    """
    match = re.match(r"^([a-z][a-z0-9+.\-]*)://([^/?#]*)(.*)$", value, re.DOTALL)
    if not match:
        return "***"
    scheme, netloc, rest = match.groups()
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    path, question, query = rest.partition("?")
    if question:
        query = "&".join(f"{k}={'***' if k.lower() in SECRET_QUERY_KEYS else v}"
                         for k, v in parse_qsl(query, keep_blank_values=True))
    return f"{scheme}://{netloc}{path}{question}{query}"


FIELD_NAMES = frozenset(Settings.__struct_fields__)


def load_settings(config_path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``config_path`` (TOML; ``None`` means ``./conveyor.toml`` if present)
    overridden by ``CONVEYOR_*`` variables in ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    explicit = config_path is not None or "CONVEYOR_CONFIG" in environ
    path = Path(config_path or environ.get("CONVEYOR_CONFIG") or "conveyor.toml")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path.exists() or explicit:
        for key, value in _read_toml(path).items():
            values[key], sources[key] = value, f"{path}: {key}"
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in FIELD_NAMES:
            raise ConfigError(name, f"unknown setting (known: {', '.join(sorted(FIELD_NAMES))})")
        values[key], sources[key] = value, name
    return _convert(values, sources)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML ({exc})") from None
    for key, value in data.items():
        if key not in FIELD_NAMES:
            raise ConfigError(f"{path}: {key}", "unknown setting")
        if isinstance(value, dict):
            raise ConfigError(f"{path}: {key}", "expected a value, got a table")
    return data


def _convert(values: dict[str, Any], sources: dict[str, str]) -> Settings:
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = re.search(r"at `\$\.(\w+)`", text)
        key = match.group(1) if match else "?"
        reason = re.sub(r" - at `\$\.\w+`$", "", text)
        raise ConfigError(sources.get(key, key), reason) from None
