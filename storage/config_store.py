"""The configuration service's store: every version of a configuration (feature specs,
training triggers, serving configurations) kept append-only in ``configs``, the current one in the table its actor
reads, and an audit record for each change, all in one transaction."""

from __future__ import annotations

import json

import asyncpg

#: kind -> (the table its actor reads, its key column, its body column)
CURRENT = {"feature_spec": ("feature_specs", "dataset", "spec_toml"),
           "training_trigger": ("training_triggers", "dataset", "config_toml"),
           "serving": ("serving_configs", "model", "config_toml")}


async def set_config(pool: asyncpg.Pool, kind: str, name: str, body: str, actor: str = "client") -> int:
    """Make ``body`` the current ``kind`` configuration of ``name``; its version. The same
    body as the current version is no change (that version, no new record)."""
    table, key, column = CURRENT[kind]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"config:{kind}:{name}")
        latest = await conn.fetchrow("SELECT version, body FROM configs WHERE kind = $1 AND name = $2"
                                     " ORDER BY version DESC LIMIT 1", kind, name)
        if latest is not None and latest["body"] == body:
            return latest["version"]
        version = (latest["version"] if latest else 0) + 1
        await conn.execute("INSERT INTO configs (kind, name, version, body, actor) VALUES ($1, $2, $3, $4, $5)",
                           kind, name, version, body, actor)
        await conn.execute(f"INSERT INTO {table} ({key}, {column}) VALUES ($1, $2) ON CONFLICT ({key})"
                           f" DO UPDATE SET {column} = EXCLUDED.{column}, updated_at = now()", name, body)
        await conn.execute("INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, 'config.changed', $2,"
                           " $3::jsonb)", actor, name, json.dumps({"kind": kind, "version": version}))
    return version
