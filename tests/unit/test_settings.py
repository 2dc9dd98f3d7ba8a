"""Unit tests of storage.settings: TOML file, CONVEYOR_* overrides, validation errors, secret masking.

Every test passes ``environ=`` explicitly and writes its files under ``tmp_path``;
nothing here reads ``os.environ`` or the working directory of the test run.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import storage.settings as settings_module
from storage.settings import ConfigError, Settings, load_settings, mask_secret

PG_PASSWORD = "hunter2-pg-secret"
REDIS_PASSWORD = "rds-secret-pw"
SIGNING_KEY = "sk-0123456789abcdef-very-secret"


def write_toml(tmp_path: Path, text: str, name: str = "conveyor.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_file(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(write_toml(tmp_path, text), environ={} if environ is None else environ)


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path, text, environ)
    return info.value


# --- values from the file and the environment ---------------------------------------------


def test_defaults_without_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./conveyor.toml here
    s = load_settings(None, environ={})
    assert s == Settings()
    assert (s.cluster_name, s.topic_partitions, s.log_level) == ("conveyor", 2, "info")
    assert s.postgres_dsn is None and s.signing_key is None


def test_values_come_from_the_toml_file(tmp_path):
    s = load_file(tmp_path, """
cluster_name = "prod-1"
state_dir = "/var/lib/conveyor"
topic_partitions = 8
heartbeat_interval_s = 0.25
restart_period_s = 10
backoff_base_s = 0
kafka_bootstrap = "broker:9092"
log_level = "debug"
""")
    assert s.cluster_name == "prod-1"
    assert s.state_dir == "/var/lib/conveyor"
    assert s.topic_partitions == 8
    assert s.heartbeat_interval_s == 0.25
    assert s.restart_period_s == 10.0 and isinstance(s.restart_period_s, float)
    assert s.backoff_base_s == 0.0
    assert s.kafka_bootstrap == "broker:9092"
    assert s.log_level == "debug"
    # Keys not in the file keep their defaults.
    assert s.restart_intensity == Settings().restart_intensity


def test_default_file_in_working_directory_is_read(tmp_path, monkeypatch):
    write_toml(tmp_path, "topic_partitions = 5\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).topic_partitions == 5


def test_environment_values_are_converted_from_strings():
    s = load_settings(None, environ={
        "CONVEYOR_TOPIC_PARTITIONS": "4",
        "CONVEYOR_HEARTBEAT_INTERVAL_S": "0.1",
        "CONVEYOR_CLUSTER_NAME": "edge-2",
        "CONVEYOR_POSTGRES_DSN": "postgresql://app@db/x",
    })
    assert (s.topic_partitions, s.heartbeat_interval_s, s.cluster_name) == (4, 0.1, "edge-2")
    assert s.postgres_dsn == "postgresql://app@db/x"


def test_environment_overrides_file(tmp_path):
    s = load_file(tmp_path, 'topic_partitions = 3\ncluster_name = "from-file"\n',
                  environ={"CONVEYOR_TOPIC_PARTITIONS": "7"})
    assert s.topic_partitions == 7
    assert s.cluster_name == "from-file"


def test_bad_environment_override_is_blamed_on_the_variable(tmp_path):
    err = config_error(tmp_path, "topic_partitions = 3\n", environ={"CONVEYOR_TOPIC_PARTITIONS": "0"})
    assert err.key == "CONVEYOR_TOPIC_PARTITIONS"
    assert ">= 1" in err.reason


def test_unrelated_environment_variables_are_ignored():
    s = load_settings(None, environ={"PATH": "/bin", "HOME": "/root", "CONVEYORX": "1", "MY_CONVEYOR_FOO": "1"})
    assert s == Settings()


def test_conveyor_config_variable_points_at_the_file(tmp_path):
    path = write_toml(tmp_path, "topic_partitions = 9\n", name="elsewhere.toml")
    s = load_settings(None, environ={"CONVEYOR_CONFIG": str(path)})
    assert s.topic_partitions == 9  # and CONVEYOR_CONFIG itself is not taken for a setting


def test_explicit_path_wins_over_conveyor_config(tmp_path):
    explicit = write_toml(tmp_path, "topic_partitions = 11\n", name="a.toml")
    other = write_toml(tmp_path, "topic_partitions = 12\n", name="b.toml")
    assert load_settings(explicit, environ={"CONVEYOR_CONFIG": str(other)}).topic_partitions == 11


def test_missing_explicit_config_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, environ={})
    assert info.value.key == str(missing)
    assert "not found" in info.value.reason


def test_missing_file_named_by_conveyor_config_is_an_error(tmp_path):
    missing = tmp_path / "gone.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CONVEYOR_CONFIG": str(missing)})
    assert info.value.key == str(missing)
    assert "not found" in info.value.reason


def test_directory_as_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_settings(tmp_path, environ={})


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = write_toml(tmp_path, "topic_partitions = 2\nfoo = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.key == f"{path}: foo"
    assert "unknown setting" in info.value.reason
    assert str(info.value).startswith(f"{path}: foo")


def test_unknown_table_in_file_is_an_unknown_key(tmp_path):
    err = config_error(tmp_path, "[database]\nhost = 'x'\n")
    assert err.key.endswith(": database")
    assert "unknown setting" in err.reason


def test_unknown_key_in_environment_names_the_variable():
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CONVEYOR_FOO": "1"})
    assert info.value.key == "CONVEYOR_FOO"
    assert "unknown setting" in info.value.reason
    assert "topic_partitions" in info.value.reason  # the known names are listed
    assert str(info.value).startswith("CONVEYOR_FOO: ")


def test_misspelt_environment_variable_is_refused_not_ignored():
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CONVEYOR_TOPIC_PARTITION": "4"})
    assert info.value.key == "CONVEYOR_TOPIC_PARTITION"


# --- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, key, reason_part", [
    ('topic_partitions = "many"', "topic_partitions", "Expected `int`"),
    ("topic_partitions = 2.5", "topic_partitions", "Expected `int`"),
    ("topic_partitions = [1]", "topic_partitions", "array"),
    ("topic_partitions = 0", "topic_partitions", ">= 1"),
    ("topic_partitions = 257", "topic_partitions", "<= 256"),
    ("topic_partitions = -3", "topic_partitions", ">= 1"),
    ("kafka_fetch_max_wait_ms = 10001", "kafka_fetch_max_wait_ms", "<= 10000"),
    ("kafka_max_batch = 0", "kafka_max_batch", ">= 1"),
    ("restart_intensity = 0", "restart_intensity", ">= 1"),
    ("max_missed_heartbeats = 10001", "max_missed_heartbeats", "<= 10000"),
    ("n_checks_per_ping = 0", "n_checks_per_ping", ">= 1"),
    ("n_checks_per_ping = 2.5", "n_checks_per_ping", "int"),
    ("heartbeat_interval_s = -1", "heartbeat_interval_s", "> 0.0"),
    ("heartbeat_interval_s = 0", "heartbeat_interval_s", "> 0.0"),
    ("restart_period_s = -0.5", "restart_period_s", "> 0.0"),
    ("backoff_base_s = -0.1", "backoff_base_s", ">= 0.0"),
    ("backoff_max_s = -5", "backoff_max_s", "> 0.0"),
    ("start_timeout_s = 0", "start_timeout_s", "> 0.0"),
    ("heartbeat_interval_s = nan", "heartbeat_interval_s", "> 0.0"),
    ('heartbeat_interval_s = "soon"', "heartbeat_interval_s", "Expected `float`"),
    ("postgres_dsn = 5", "postgres_dsn", "Expected `str | null`"),
    ("cluster_name = 7", "cluster_name", "Expected `str`"),
    ('log_level = "verbose"', "log_level", "regex"),
    ('log_level = "INFO"', "log_level", "regex"),
])
def test_bad_file_value_names_file_key_and_reason(tmp_path, text, key, reason_part):
    path = write_toml(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.key == f"{path}: {key}"
    assert reason_part in info.value.reason
    assert "$." not in info.value.reason  # the msgspec path is replaced by the source


@pytest.mark.parametrize("name, value, reason_part", [
    ("CONVEYOR_TOPIC_PARTITIONS", "many", "Expected `int`"),
    ("CONVEYOR_TOPIC_PARTITIONS", "", "Expected `int`"),
    ("CONVEYOR_TOPIC_PARTITIONS", "2.5", "Expected `int`"),
    ("CONVEYOR_TOPIC_PARTITIONS", "true", "Expected `int`"),
    ("CONVEYOR_TOPIC_PARTITIONS", "0", ">= 1"),
    ("CONVEYOR_TOPIC_PARTITIONS", "1000", "<= 256"),
    ("CONVEYOR_HEARTBEAT_INTERVAL_S", "-1", "> 0.0"),
    ("CONVEYOR_HEARTBEAT_INTERVAL_S", "nan", "> 0.0"),
    ("CONVEYOR_HEARTBEAT_INTERVAL_S", "fast", "Expected `float`"),
    ("CONVEYOR_BACKOFF_BASE_S", "-0.01", ">= 0.0"),
    ("CONVEYOR_RESTART_INTENSITY", "-1", ">= 1"),
    ("CONVEYOR_LOG_LEVEL", "trace", "regex"),
])
def test_bad_environment_value_names_the_variable(name, value, reason_part):
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={name: value})
    assert info.value.key == name
    assert reason_part in info.value.reason
    assert str(info.value) == f"{name}: {info.value.reason}"


@pytest.mark.parametrize("text", [
    "topic_partitions = true",
    "topic_partitions = false",
    "max_missed_heartbeats = true",
    "n_checks_per_ping = true",
    "restart_intensity = false",
    "kafka_max_batch = true",
    "heartbeat_interval_s = true",
    "backoff_base_s = false",
])
def test_toml_booleans_are_refused_where_numbers_are_expected(tmp_path, text):
    err = config_error(tmp_path, text + "\n")
    assert err.key.endswith(": " + text.split(" = ")[0])
    assert "got `bool`" in err.reason


@pytest.mark.parametrize("text, key", [
    ("cluster_name = {a = 1}", "cluster_name"),
    ("topic_partitions = {n = 4}", "topic_partitions"),
    ("[postgres_dsn]\nhost = 'db'", "postgres_dsn"),
])
def test_table_where_a_value_belongs_is_refused(tmp_path, text, key):
    err = config_error(tmp_path, text + "\n")
    assert err.key.endswith(f": {key}")
    assert "got a table" in err.reason


@pytest.mark.parametrize("text", [
    "topic_partitions = ",
    "topic_partitions = 2\ntopic_partitions = 3",  # duplicate key
    "cluster_name = 'unterminated",
    "= 3",
])
def test_invalid_toml_is_refused_naming_the_file(tmp_path, text):
    path = write_toml(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.key == str(path)
    assert info.value.reason.startswith("not valid TOML")


def test_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "conveyor.toml"
    path.write_bytes(b'cluster_name = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.key == str(path)
    assert "not valid TOML" in info.value.reason


def test_config_error_is_a_value_error():
    err = ConfigError("k", "why")
    assert isinstance(err, ValueError)
    assert (err.key, err.reason, str(err)) == ("k", "why", "k: why")


def test_infinite_duration_is_refused(tmp_path):
    config_error(tmp_path, "heartbeat_interval_s = inf\n")


# --- hostile values -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    'conveyor"; rm -rf /',
    "x'; DROP TABLE raw_events; --",
    "../../etc/passwd",
    "a/b",
    "Conveyor",             # upper case
    "1conveyor",            # starts with a digit
    "-conveyor",
    "",
    "a" * 32,               # one over the 31-character limit
    "a" * 100_000,
    "con veyor",
    "conveyor\x00",
    "conv\x00eyor",
    "conveyor\r",
    "kon\u0432eyor",        # Cyrillic homoglyph
    "conveyor\u202e",
])
def test_hostile_cluster_name_is_refused_by_its_pattern(tmp_path, name):
    with pytest.raises(ConfigError) as env_info:
        load_settings(None, environ={"CONVEYOR_CLUSTER_NAME": name})
    assert env_info.value.key == "CONVEYOR_CLUSTER_NAME"
    assert "regex" in env_info.value.reason
    toml_string = name.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\u0000").replace("\r", "\\r")
    err = config_error(tmp_path, f'cluster_name = "{toml_string}"\n')
    assert err.key.endswith(": cluster_name")


@pytest.mark.parametrize("name", ["a", "conveyor", "prod-eu-1", "a" + "b" * 30])
def test_plain_cluster_names_are_accepted(name):
    assert load_settings(None, environ={"CONVEYOR_CLUSTER_NAME": name}).cluster_name == name


@pytest.mark.parametrize("name, value", [("CONVEYOR_CLUSTER_NAME", "conveyor\n"), ("CONVEYOR_LOG_LEVEL", "info\n")])
def test_trailing_newline_is_refused_by_patterns(name, value):
    with pytest.raises(ConfigError):
        load_settings(None, environ={name: value})


def test_very_long_values_do_not_break_loading(tmp_path):
    long_dir, long_key = "d" * 200_000, "k" * 200_000
    s = load_settings(None, environ={"CONVEYOR_SIGNING_KEY": long_key})
    assert s.signing_key == long_key
    assert "k" * 100 not in repr(s)
    with pytest.raises(ConfigError) as too_long:
        load_settings(None, environ={"CONVEYOR_STATE_DIR": long_dir})
    assert too_long.value.key == "CONVEYOR_STATE_DIR" and len(str(too_long.value)) < 1000
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"CONVEYOR_TOPIC_PARTITIONS": "9" * 100_000})
    assert info.value.key == "CONVEYOR_TOPIC_PARTITIONS"
    assert len(str(info.value)) < 1000  # the value itself is not echoed back


def test_nul_byte_in_state_dir_is_refused(tmp_path):
    config_error(tmp_path, 'state_dir = "/var/lib/a\\u0000b"\n')


# --- secrets --------------------------------------------------------------------------------


def secret_settings() -> Settings:
    return load_settings(None, environ={
        "CONVEYOR_POSTGRES_DSN": f"postgresql://app:{PG_PASSWORD}@db.internal:5432/conveyor",
        "CONVEYOR_REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache:6379/0",
        "CONVEYOR_SIGNING_KEY": SIGNING_KEY,
    })


@pytest.mark.parametrize("render", [repr, str, lambda s: f"{s!r}", lambda s: str(s.redacted()),
                                    lambda s: repr(s.redacted())])
def test_secrets_never_appear_when_rendered(render):
    text = render(secret_settings())
    for secret in (PG_PASSWORD, REDIS_PASSWORD, SIGNING_KEY):
        assert secret not in text


def test_redacted_masks_secrets_and_keeps_the_rest():
    s = secret_settings()
    out = s.redacted()
    assert set(out) == set(Settings.__struct_fields__)
    assert out["postgres_dsn"] == "postgresql://app:***@db.internal:5432/conveyor"
    assert out["redis_url"] == "redis://:***@cache:6379/0"
    assert out["signing_key"] == "***"
    assert out["cluster_name"] == s.cluster_name and out["topic_partitions"] == s.topic_partitions
    # The settings themselves keep the real values.
    assert PG_PASSWORD in s.postgres_dsn and s.signing_key == SIGNING_KEY


def test_secrets_from_a_file_are_masked_too(tmp_path):
    s = load_file(tmp_path, f'postgres_dsn = "postgresql://u:{PG_PASSWORD}@h/d"\nsigning_key = "{SIGNING_KEY}"\n')
    assert PG_PASSWORD not in repr(s) and SIGNING_KEY not in repr(s)


def test_unset_secrets_stay_none_in_redacted():
    out = Settings().redacted()
    assert out["postgres_dsn"] is None and out["redis_url"] is None and out["signing_key"] is None


def test_repr_lists_every_field():
    text = repr(Settings())
    assert text.startswith("Settings(") and text.endswith(")")
    for name in Settings.__struct_fields__:
        assert f"{name}=" in text


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().topic_partitions = 3  # type: ignore[misc]


@pytest.mark.parametrize("field, url", [
    ("postgres_dsn", f"postgresql://db:5432/x?password={PG_PASSWORD}"),
    ("postgres_dsn", f"postgresql:///x?host=/run/pg&user=app&password={PG_PASSWORD}"),
    ("redis_url", f"redis://cache:6379/0?password={REDIS_PASSWORD}"),
])
def test_query_string_password_is_masked(field, url):
    s = Settings(**{field: url})
    assert url.rsplit("=", 1)[1] not in repr(s)


def test_password_containing_at_sign_is_masked_whole():
    assert "ss@" not in mask_secret("postgresql://app:p@ss@db/x")


def test_url_shaped_signing_key_is_masked():
    assert Settings(signing_key="k://0123456789abcdef").redacted()["signing_key"] == "***"


@pytest.mark.parametrize("value, masked", [
    ("postgresql://app:hunter2@db:5432/x", "postgresql://app:***@db:5432/x"),
    ("postgres://u:p@h/d?sslmode=require", "postgres://u:***@h/d?sslmode=require"),
    ("postgresql://app:pw@h1:5432,h2:5432/db", "postgresql://app:***@h1:5432,h2:5432/db"),
    ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://user:secret@cache:6380", "rediss://user:***@cache:6380"),
    ("redis+sentinel://u:pw@s1:26379/m", "redis+sentinel://u:***@s1:26379/m"),
    ("postgresql://u:@h/d", "postgresql://u:***@h/d"),  # empty password: still masked, harmless
    # No password: unchanged.
    ("postgresql://postgres@/db?host=/run/pg", "postgresql://postgres@/db?host=/run/pg"),
    ("postgresql://db:5432/x", "postgresql://db:5432/x"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
    # Not a URL: masked whole.
    ("just-a-key", "***"),
    ("host=db user=app password=hunter2", "***"),
    ("", "***"),
    ("POSTGRESQL://a:pw@h/x", "***"),
    ("user:pw@host", "***"),
])
def test_mask_secret_cases(value, masked):
    assert mask_secret(value) == masked


# --- doctests -----------------------------------------------------------------------------


def test_module_doctests_pass():
    result = doctest.testmod(settings_module)
    assert result.attempted > 0
    assert result.failed == 0
