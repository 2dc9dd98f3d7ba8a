"""Scoring with a live online learner, routed in the caller: the learner partition that
learns the entity's events answers from its current champion (one Ray hop, a consistent
snapshot: a partition answers between steps); when it is late or down, the learner's
baseline (its most frequent label, or its mean, published after the first step it learned in
and at every checkpoint; another partition's while it has none) answers within the deadline.
Every answer is recorded like any other score."""

from __future__ import annotations

import asyncio
import json
import math
import time

from client.deadlines import within
from client.scoring import NAME, ScoreResult, ScoringFailed, ScoringRefused, _cause, baseline_room_s, fallback_at_s


async def score_online(router, learner: str, features: dict, entity_key: str | None, deadline_ms: float,
                       n_partitions: int) -> ScoreResult:
    from client.learning import partition_of
    from messages.base import new_id

    began = time.perf_counter()
    if not isinstance(learner, str) or not NAME.match(learner):
        raise ScoringRefused("learner", "letters, digits, '_', '.', '-'; starts with a letter; at most 63")
    if not isinstance(features, dict):
        raise ScoringRefused("features", f"a mapping of field to value; got {type(features).__name__}")
    request = router._check(learner, features, None, deadline_ms)
    keep_baselines(router, learner, n_partitions)
    known = router.__dict__.setdefault("_learner_partitions", {})
    if entity_key:
        order = [partition_of(entity_key, n_partitions)]
    else:   # any partition that learns it; the one that answered last time first, one late just now last
        first = known.get(learner, 0)
        by_name = {_name(p): p for p in (first, *(p for p in range(n_partitions) if p != first))}
        order = [by_name[name] for name in router.punctual_first(list(by_name))]
    reason = answer = None
    partition, at, renewed = order[0], 0, set()
    while at < len(order):
        partition = order[at]
        name = _name(partition)
        left = fallback_at_s(deadline_ms / 1000.0) - (time.perf_counter() - began)
        if left <= 0:
            break
        handle = await router.find_actor(name, left)
        if handle is None:
            reason, at = f"{name} is not running", at + 1
            continue
        try:
            left = fallback_at_s(deadline_ms / 1000.0) - (time.perf_counter() - began)
            if left <= 0:
                break
            call = handle.request.remote("predict", learner, request["features"], entity_key)
            answer = await within(call, left)
            answer["answered_by"] = "online"
            known[learner] = partition
            break
        except asyncio.TimeoutError:
            router.was_late(name)
            reason = f"learner {learner} did not answer within {deadline_ms * 0.75:.0f} ms"
            break
        except Exception as exc:
            cause = _cause(exc)
            if type(cause).__name__ == "LearnerUnknown" and partition != order[-1]:
                reason, at = cause.reason, at + 1
                continue
            if type(cause).__name__ == "LearnerNotReady":     # restarted, restoring: another, else the baseline
                reason, at = str(cause), at + 1
                continue
            if hasattr(cause, "field") and hasattr(cause, "reason"):
                raise ScoringRefused(cause.field, cause.reason) from None
            router.forget_actor(name)
            reason = f"{name} failed: {type(cause).__name__}"
            if partition not in renewed and _gone(exc):    # a handle from before the partition restarted:
                renewed.add(partition)                     # ask the one running under its name now
                continue
            at += 1
    if answer is None:
        deadline_s = deadline_ms / 1000.0
        left = deadline_s - (time.perf_counter() - began) - baseline_room_s(deadline_s)
        answer = await _baseline(router, learner, partition, n_partitions, left)
        if answer is None:
            raise ScoringFailed(f"learner {learner}: {reason}, and it has no baseline yet")
    result = ScoreResult(request_id=new_id(), model=learner, version=None, score=answer.get("score"),
                         label=answer.get("label"), answered_by=answer["answered_by"],
                         fallback=answer["answered_by"] == "baseline",
                         latency_ms=(time.perf_counter() - began) * 1000.0, reason=reason)
    router._record(result, entity_key)
    return result


#: A learner's baselines are read ahead (in the background) at most this often.
BASELINE_READ_AHEAD_S = 30.0


def keep_baselines(router, learner: str, n_partitions: int) -> None:
    """Read the learner's baselines ahead, in the background, now and then: while Redis does
    not answer (down, being repaired) the baseline comes from what this process read last,
    and a process that had never needed one before would have none to answer with."""
    read_at = router.__dict__.setdefault("_baselines_read_at", {})
    if time.monotonic() - read_at.get(learner, -math.inf) < BASELINE_READ_AHEAD_S:
        return
    read_at[learner] = time.monotonic()
    reads = router.__dict__.setdefault("_baseline_reads", set())
    task = asyncio.ensure_future(_baseline(router, learner, 0, n_partitions, 1.0))
    reads.add(task)
    task.add_done_callback(reads.discard)


async def _baseline(router, learner: str, partition: int, n_partitions: int, within_s: float) -> dict | None:
    """The baseline of ``partition``, or else of another partition of the learner: one that has
    not checkpointed yet (it saw few events, or none) has none of its own, and another's answer
    in time is better than none. Read from Redis within ``within_s``; while Redis does not
    answer in time (down, being repaired), the one this process read last."""
    from redis.exceptions import RedisError

    from actors.learner import baseline_key

    order = [partition, *(p for p in range(n_partitions) if p != partition)]
    last = router.__dict__.setdefault("_learner_baselines", {})
    try:
        found = await within(
            router._redis.mget([baseline_key(router.settings.cluster_name, learner, p) for p in order]),
            max(within_s, 0.001))
    except (RedisError, OSError, asyncio.TimeoutError):
        found = [last.get((learner, p)) for p in order]
    else:
        last.update({(learner, p): raw for p, raw in zip(order, found) if raw is not None})
    raw = next((value for value in found if value is not None), None)
    return None if raw is None else {**json.loads(raw), "answered_by": "baseline"}


def _name(partition: int) -> str:
    return f"root.learn.learner-{partition}"


def _gone(exc: BaseException) -> bool:
    """Whether a Ray call failed because the actor behind the handle is gone (died or restarting)."""
    from actors.remote import ActorGone

    return isinstance(exc, ActorGone)
