"""Versioned SQL migrations from ``storage/schema/NNNN_name.sql``, applied once each.

Concurrent starters are serialised by an advisory lock; every file runs in its
own transaction together with its row in ``schema_migrations``.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
_LOCK_KEY = 0x0C0_4E7_02  # any constant shared by every Conveyor process
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migration_files(directory: Path = SCHEMA_DIR) -> list[tuple[int, str, Path]]:
    """(version, name, path) of every migration file, in version order."""
    found = []
    for path in directory.iterdir():
        match = _FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), match.group(2), path))
    return sorted(found)


async def apply_migrations(conn: asyncpg.Connection, directory: Path = SCHEMA_DIR) -> list[int]:
    """Apply every migration not applied yet; the versions applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
