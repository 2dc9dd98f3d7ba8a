"""Every CLI argument that names something, counts something or carries data, fuzzed
(hypothesis) through ``run.main`` against the session cluster: each invocation exits 0, 1
or 2 with its reason and never a traceback; a name or id outside its rule is refused
(exit 2, naming the field) and leaves nothing stored. Runs in this process (the cluster's
settings in the environment), so hundreds of invocations cost seconds, not minutes."""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_hostile_names import HOSTILE

pytestmark = pytest.mark.integration

NAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,62}\Z")
#: Anything, near-misses of the name rule, and the known hostile spellings (argv holds no NUL).
values = st.one_of(st.text(max_size=80), st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-]{0,70}\Z"),
                   st.sampled_from(HOSTILE)).map(lambda v: v.replace("\x00", ""))
numbers = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "", "0x10", "1_000", " 3", "٣"]))
json_text = st.one_of(st.text(max_size=60), st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8).map(lambda v: __import__("json").dumps(v)))

#: (argv with {v} where the fuzzed value goes, is {v} a name that must follow the rule).
NAMED = [
    (["features", "set", "{v}", "{spec}"], True),
    (["features", "get", "{v}", "k1"], True),
    (["features", "join", "{v}", "a-src", "b-src"], True),
    (["models", "list", "{v}"], True),
    (["models", "show", "{v}"], True),
    (["models", "deploy", "{v}", "1"], True),
    (["batch-score", "{v}", "--no-wait"], True),
    (["score", "{v}", "--features", "{{}}"], True),
    (["learners", "show", "{v}"], True),
    (["learners", "remove", "{v}"], True),
    (["lineage", "{v}", "1"], True),
    (["data", "batches", "{v}"], True),
    (["data", "feature-sets", "{v}"], True),
    (["data", "scores", "{v}"], True),
    (["config", "show", "serving", "{v}"], True),
    (["config", "set", "serving", "{v}", "{serving}"], True),
    (["monitor", "{v}"], True),
    (["restore", "{v}"], True),
    (["ingest", "{v}", "{csv}", "--no-wait"], True),
    (["audit", "--subject", "{v}"], False),
    (["data", "rejects", "{v}"], False),
    (["schedule", "remove", "{v}"], False),
    (["data", "scores", "fuzz-model", "--request", "{v}"], False),
    (["features", "get", "fuzz-data", "{v}"], False),
    (["score", "fuzz-model", "--entity-key", "{v}"], False),
    (["ingest", "fuzz-data", "{v}", "--no-wait"], False),
]
COUNTED = [
    ["data", "batches", "--limit", "{v}"],
    ["audit", "--limit", "{v}"],
    ["monitor", "--alerts", "{v}"],
    ["models", "show", "fuzz-model", "{v}"],
    ["lineage", "fuzz-model", "{v}"],
    ["config", "show", "serving", "fuzz-model", "--version", "{v}"],
    ["score", "fuzz-model", "--features", "{{}}", "--deadline-ms", "{v}"],
    ["models", "deploy", "fuzz-model", "1", "--replicas", "{v}"],
    ["batch-score", "fuzz-model", "--version", "{v}", "--no-wait"],
]
#: What a write that was refused must not have stored, per command.
STORED = {
    "features set": "SELECT count(*) FROM feature_specs WHERE dataset = $1",
    "features join": "SELECT count(*) FROM feature_joins WHERE name = $1",
    "config set": "SELECT count(*) FROM serving_configs WHERE model = $1",
    "ingest": "SELECT count(*) FROM raw_batches WHERE dataset = $1",
}


@pytest.fixture(scope="module")
def cli(cluster, settings, tmp_path_factory):
    """``call(argv) -> (exit code, stdout, stderr)`` of ``run.main`` in this process, on the
    session cluster; files for the arguments that take one."""
    import run

    folder = tmp_path_factory.mktemp("fuzz")
    files = {"spec": folder / "spec.toml", "serving": folder / "serving.toml", "csv": folder / "rows.csv"}
    files["spec"].write_text('[[steps]]\nname = "x"\ntransform = "numeric"\ncolumns = ["x"]\n')
    files["serving"].write_text("replicas = 1\n")
    files["csv"].write_text("id,x\nr1,1.5\n")
    saved = {k: os.environ.get(k) for k in cluster.env if k.startswith("CONVEYOR_")}
    os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("CONVEYOR_")})

    def call(argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run.main(argv)
            except SystemExit as exc:          # argparse: a malformed command line
                code = exc.code
        return code, out.getvalue(), err.getvalue()

    yield call, {k: str(v) for k, v in files.items()}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _argv(template: list[str], value: str, files: dict[str, str]) -> list[str]:
    return [part.format(v=value, **files) if "{" in part else part for part in template]


def _checked(call, argv: list[str]) -> tuple[int, str, str]:
    code, out, err = call(argv)
    assert code in (0, 1, 2), (argv, code, out, err)
    assert "Traceback" not in out + err, (argv, out, err)
    if code != 0:
        assert err.strip() or out.strip(), (argv, "failed without saying why")
    return code, out, err


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
@pytest.mark.parametrize("template, is_name", NAMED, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_fuzzed_name_or_id_is_refused_or_answered_never_a_traceback(cli, settings, template, is_name, value):
    import asyncio

    import asyncpg

    call, files = cli
    argv = _argv(template, value, files)
    code, out, err = _checked(call, argv)
    if is_name and not NAME_RULE.match(value) and not value.startswith("-"):
        assert code == 2, (argv, code, out, err)                 # refused, never run
        command = " ".join(template[:2]) if template[0] in ("features", "config") else template[0]
        query = STORED.get(command)
        if query is not None:
            async def stored() -> int:
                conn = await asyncpg.connect(settings.postgres_dsn)
                try:
                    return await conn.fetchval(query, value)
                finally:
                    await conn.close()

            assert asyncio.run(stored()) == 0, (argv, "a refused write stored something")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=numbers)
@pytest.mark.parametrize("template", COUNTED, ids=lambda v: " ".join(v))
def test_a_fuzzed_count_or_version_is_refused_or_answered_never_a_traceback(cli, template, value):
    call, files = cli
    _checked(call, _argv(template, value, files))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_text)
def test_fuzzed_request_features_are_refused_or_answered_never_a_traceback(cli, value):
    call, _ = cli
    code, _, _ = _checked(call, ["score", "fuzz-model", "--features", value, "--deadline-ms", "200"])
    assert code != 0                                              # no such model: nothing answers
