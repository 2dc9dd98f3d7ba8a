"""Printing shared by the benchmarks."""

from __future__ import annotations


def print_errors(errors: list[str], tail: int = 8) -> None:
    """Each error's first line, then its last ``tail`` lines indented (tracebacks stay short)."""
    if not errors:
        return
    print("\nerrors:")
    for error in errors:
        lines = error.strip().splitlines() or [error]
        print(f"  {lines[0]}")
        for line in lines[1:][-tail:]:
            print(f"      {line}")
