"""The configuration service, read back: every configuration the actors read, with its
versions. Feature specs, training triggers and serving configurations are versioned in
``configs`` (each change by :meth:`~client.connection.Conveyor.set_feature_spec`,
:meth:`~client.connection.Conveyor.set_training_trigger` or
:meth:`~client.connection.Conveyor.set_serving_config` is a new version with an audit
record); learners are versioned in their own table and listed here too.

    import asyncio
    from client.connection import Conveyor
    async def main():
        async with Conveyor.connect() as conveyor:
            for config in await conveyor.configs():
                print(config.kind, config.name, config.version)
            print((await conveyor.config("feature_spec", "iris", version=1)).body)
    asyncio.run(main())
"""

from __future__ import annotations

import datetime as dt

import msgspec

from client.data import QueryRefused, check_name

KINDS = ("feature_spec", "training_trigger", "serving", "learner")
#: The kinds ``config set`` changes (a learner is created and changed by ``learners``).
SETTABLE = ("feature_spec", "training_trigger", "serving")

_VERSIONS = """
    SELECT kind, name, version, body, actor, created_at, false AS removed FROM configs
    UNION ALL
    SELECT 'learner', name, revision, config, 'client', created_at, removed FROM learners
"""


class ConfigVersion(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    version: int
    created_at: dt.datetime
    actor: str
    body: str = ""
    removed: bool = False          # a learner's revision that removed it


def check_kind(value: object, optional: bool = False) -> str | None:
    """A kind of configuration, else :class:`QueryRefused` naming ``kind``.

    >>> check_kind("feature_spec"), check_kind(None, optional=True)
    ('feature_spec', None)
    >>> try:
    ...     check_kind("passwords")
    ... except QueryRefused as e:
    ...     print(e.field, "|", e.reason)
    kind | one of feature_spec, training_trigger, serving, learner; got 'passwords'
    """
    if value is None and optional:
        return None
    if value not in KINDS:
        raise QueryRefused("kind", f"one of {', '.join(KINDS)}; got {value!r:.80}")
    return value


class ConfigQueries:
    """The configuration methods of :class:`client.connection.Conveyor`."""

    async def configs(self, kind: str | None = None) -> list[ConfigVersion]:
        """The current version of every configuration (of ``kind``), by kind and name."""
        kind = check_kind(kind, optional=True)
        rows = await (await self._db()).fetch(
            f"SELECT DISTINCT ON (kind, name) kind, name, version, actor, created_at, removed FROM ({_VERSIONS}) v"
            " WHERE $1::text IS NULL OR kind = $1 ORDER BY kind, name, version DESC", kind)
        return [ConfigVersion(**dict(r)) for r in rows if not r["removed"]]

    async def config_history(self, kind: str, name: str) -> list[ConfigVersion]:
        """Every version of one configuration, newest first (with its text)."""
        kind, name = check_kind(kind), check_name("name", name)
        rows = await (await self._db()).fetch(
            f"SELECT * FROM ({_VERSIONS}) v WHERE kind = $1 AND name = $2 ORDER BY version DESC", kind, name)
        if not rows:
            raise QueryRefused("name", f"no {kind} configuration named {name!r}")
        return [ConfigVersion(**dict(r)) for r in rows]

    async def config(self, kind: str, name: str, version: int | None = None) -> ConfigVersion:
        """One version of a configuration (default: the current one) with its text."""
        history = await self.config_history(kind, name)
        if version is None:
            return history[0]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise QueryRefused("version", f"a version number from 1; got {version!r:.40}")
        for found in history:
            if found.version == version:
                return found
        raise QueryRefused("version", f"{kind} {name!r} has versions 1 to {history[0].version}; got {version}")
