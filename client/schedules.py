"""Scheduled ingestion and training, listed and removed. Schedules are added by
``Conveyor.schedule_ingest`` and ``Conveyor.schedule_training`` (also ``ingest --every``,
``train --every`` and ``schedule add``); the scheduler actor publishes each one's command
when its cron expression is due.

    import asyncio
    from client.connection import Conveyor
    async def main():
        async with Conveyor.connect() as conveyor:
            sid = await conveyor.schedule_ingest("iris", "data/iris.csv", "0 * * * *", key="id")
            print([(s.schedule_id, s.cron, s.what) for s in await conveyor.schedule_list()])
            await conveyor.unschedule(sid)
    asyncio.run(main())
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib

import msgspec

from client.data import QueryRefused

_SCHEDULE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,127}\Z")


class ScheduleInfo(msgspec.Struct, frozen=True, kw_only=True):
    schedule_id: str
    cron: str
    kind: str                       # ingest, train (or the topic of another command)
    what: str                       # what each run does, in words
    detail: dict                    # the command's fields that say what it does
    next_run_at: dt.datetime
    last_run_at: dt.datetime | None
    n_runs: int
    created_at: dt.datetime


def describe(command) -> tuple[str, str, dict]:
    """``(kind, what, detail)`` of a scheduled command.

    >>> from messages.ingestion import IngestBatch
    >>> from messages.training import TrainModels
    >>> describe(IngestBatch(dataset="iris", path="/data/iris.csv", format="csv", key_column="id"))[1]
    "ingest /data/iris.csv (csv) into dataset 'iris'"
    >>> describe(TrainModels(config_toml='model = "cancer"\\ndataset = "cancer"'))[1]
    "train model 'cancer' on dataset 'cancer'"
    """
    from messages.ingestion import IngestBatch, SourceAvailable
    from messages.training import TrainModels

    if isinstance(command, (IngestBatch, SourceAvailable)):
        detail = {"dataset": command.dataset, "path": command.path, "format": command.format,
                  "key": command.key_column, "time": command.time_column, "label": command.label_column}
        return "ingest", f"ingest {command.path} ({command.format}) into dataset {command.dataset!r}", detail
    if isinstance(command, TrainModels):
        try:
            config = tomllib.loads(command.config_toml)
        except tomllib.TOMLDecodeError:
            config = {}
        detail = {k: config.get(k) for k in ("model", "dataset", "feature_set")}
        source = (f"feature set {detail['feature_set']}" if detail["feature_set"] else
                  f"dataset {detail['dataset']!r}" if detail["dataset"] else "its data")
        return "train", f"train model {detail['model']!r} on {source}", detail
    kind = type(command).__name__
    return kind, f"publish a {kind}", {}


def check_schedule_id(schedule_id: object) -> str:
    """``schedule_id`` if it can name a schedule, else :class:`QueryRefused`.

    >>> try:
    ...     check_schedule_id("x' OR '1'='1")
    ... except QueryRefused as e:
    ...     print(e.field)
    schedule_id
    """
    if not isinstance(schedule_id, str) or not _SCHEDULE_ID.match(schedule_id):
        raise QueryRefused("schedule_id", f"{schedule_id!r:.80} is not a schedule id (`schedule list` shows them)")
    return schedule_id


class ScheduleQueries:
    """The schedule methods of :class:`client.connection.Conveyor`."""

    async def schedule_list(self) -> list[ScheduleInfo]:
        """Every schedule, with what its runs do, in id order."""
        from messages.codec import DecodeFailed, decode

        rows = await (await self._db()).fetch(
            "SELECT schedule_id, cron, topic, command, next_run_at, last_run_at, n_runs, created_at FROM schedules"
            " ORDER BY schedule_id")
        out = []
        for row in rows:
            fields = dict(row)
            topic, command = fields.pop("topic"), fields.pop("command")
            try:
                kind, what, detail = describe(decode(bytes(command)))
            except DecodeFailed:   # a command this version cannot read is still listed
                kind, what, detail = topic, f"a command on {topic!r} that this version cannot read", {}
            out.append(ScheduleInfo(**fields, kind=kind, what=what, detail=detail))
        return out

    async def unschedule(self, schedule_id: str) -> None:
        """Remove a schedule (runs already published still happen); QueryRefused if there is none."""
        check_schedule_id(schedule_id)
        if not await self.remove_schedule(schedule_id):
            raise QueryRefused("schedule_id", f"no schedule {schedule_id!r} (`schedule list` shows them)")
