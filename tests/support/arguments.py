"""Checking that a command refuses its arguments the way argparse does."""

from __future__ import annotations

import pytest


def refused(main, argv: list[str], capsys) -> str:
    """What ``main(argv)`` said on stderr when it exited 2 (argparse's usage error), before
    doing anything else; fails the test when it did not exit that way."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err
