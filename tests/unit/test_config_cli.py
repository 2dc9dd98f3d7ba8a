"""The configuration service's client checks and its command-line text (no cluster)."""

import datetime as dt
import doctest

import pytest

import client.configs
from client.cli_config import history_text, list_text, show_text
from client.configs import ConfigVersion


def version(n: int, **kw) -> ConfigVersion:
    return ConfigVersion(kind="feature_spec", name="iris", version=n, actor="client",
                         created_at=dt.datetime(2026, 11, 27, 8, n, tzinfo=dt.UTC), body=f"v = {n}\n", **kw)


def test_doctests_pass():
    assert doctest.testmod(client.configs).failed == 0


def test_texts_name_kind_name_version_and_author():
    assert list_text([version(2)]).split() == ["feature_spec", "iris", "v2", "2026-11-27", "08:02:00", "by", "client"]
    assert list_text([]) == "No configurations."
    assert [line.split()[0] for line in history_text([version(2), version(1, removed=True)]).splitlines()] == ["v2", "v1"]
    assert history_text([version(1, removed=True)]).endswith("(removed)")
    assert show_text(version(3)) == "# feature_spec iris v3, 2026-11-27 08:03:00 by client\nv = 3"


@pytest.mark.parametrize("argv", [["config"], ["config", "show", "feature_spec"], ["config", "show", "secrets", "x"],
                                  ["config", "show", "learner", "x", "--version", "two"]])
def test_the_parser_refuses_incomplete_and_bad_arguments(argv):
    import run

    with pytest.raises(SystemExit) as info:
        run.build_parser().parse_args(argv)
    assert info.value.code == 2
