"""Running a command's coroutine the way every CLI command does: a refused request exits 2,
a failed one 1, each with its reason on stderr."""

from __future__ import annotations

import asyncio
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def say(text: str) -> None:
    """One line of a command's output, flushed at once (progress reaches a pipe as it happens)."""
    print(text, flush=True)


class Exit(Exception):
    """The exit code of a command that could not finish (its reason already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def run_command(main, name: str):
    """``asyncio.run(main())``'s result; :class:`Exit` (2 when refused, 1 when failed) otherwise."""
    from client.errors import ClientError, Refused

    try:
        return asyncio.run(main())
    except Refused as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise Exit(EXIT_USAGE) from None
    except (ClientError, TimeoutError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise Exit(EXIT_FAILED) from None
