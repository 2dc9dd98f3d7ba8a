"""The demo's operating stages: a deliberately slow version (the fallback answers within
the deadline, then the monitor rolls production back), the monitoring summary, the lineage
of the deployed model, and where to look afterwards."""

from __future__ import annotations

import time

from client import demo_data as data
from client.demo import percentile, until
from client.demo_stages import DEADLINE_MS, SLOW_DELAY_S, _patients


async def slow_version(demo) -> None:
    c, model, best = demo.conveyor, demo.found["model"], demo.found["best"]
    run_id = await c.train(data.training_config(model, demo.found["dataset"], data.slow_candidate(SLOW_DELAY_S)))
    await c.wait_trained(run_id, timeout_s=600)
    slow = next(x["version"] for x in await c.candidates(model) if x["run_id"] == run_id)
    await c.deploy(model, slow, replicas=1)
    demo.say(f"  v{slow} (demo.slow_classifier, {SLOW_DELAY_S * 1000:.0f} ms an answer) deployed as production; "
             f"v{best} stays live as previous")
    demo.say(f"  scoring with a {DEADLINE_MS:g} ms deadline until the monitor rolls production back ...")
    answers, began, shown = [], time.monotonic(), time.monotonic()
    patients = _patients(demo, 100)
    while time.monotonic() - began < 120:
        for _, features, _ in patients[len(answers) % 100:][:10]:
            answers.append(await c.score(model, features, deadline_ms=DEADLINE_MS))
        if time.monotonic() - shown > 2.0:
            shown = time.monotonic()
            demo.say(f"  {len(answers)} requests, {sum(a.fallback for a in answers)} answered by a fallback")
        if "production" in await _aliases(c, model, best):
            break
    fallbacks = [a for a in answers if a.answered_by == "fallback"]
    # A loaded machine delays the caller's own timers by a few ms: count an answer late past 10% more.
    late = [a for a in answers if a.latency_ms > 1.1 * DEADLINE_MS]
    over = sum(a.latency_ms > DEADLINE_MS for a in answers)
    latencies = [a.latency_ms for a in answers]
    demo.say(f"  {len(answers)} requests in {time.monotonic() - began:.1f} s: {len(fallbacks)} answered by the "
             f"fallback (v{best}), latency p50 {percentile(latencies, 0.5):.1f} ms, max {max(latencies):.1f} ms")
    demo.check(f"the fallback answered while v{slow} was late", fallbacks and all(a.version == best for a in fallbacks),
               f"{len(fallbacks)} fallback answers")
    demo.check(f"answers within the {DEADLINE_MS:g} ms deadline", len(late) <= 0.05 * len(answers),
               f"{over} of {len(answers)} over it, {len(late)} by more than 10%")
    demo.check(f"the monitor rolled production back to v{best}", "production" in await _aliases(c, model, best))
    alert = await until(lambda: _alert(c, model, slow), 30, f"the alert about v{slow}")
    demo.say(f"  alert ({alert.kind}, {alert.severity}): {alert.summary}")
    demo.check("an alert says why", alert.rolled_back_to == best)
    after = await until(lambda: _primary(c, model, patients[0][1], best), 30, f"v{best} answering again")
    demo.check(f"v{best} answers again", after.version == best, f"{after.latency_ms:.1f} ms")
    demo.say(f"  undo with: python run.py restore {model}")
    demo.found.update(slow=slow, n_fallback=len(fallbacks))


async def _aliases(c, model: str, version: int) -> list[str]:
    return next((d["aliases"] for d in await c.deployments(model) if d["version"] == version), [])


async def _alert(c, model: str, version: int):
    return next((a for a in await c.alerts(model) if a.version == version and a.rolled_back_to), None)


async def _primary(c, model: str, features: dict, version: int):
    answer = await c.score(model, features, deadline_ms=DEADLINE_MS)
    return answer if answer.answered_by == "primary" and answer.version == version else None


async def monitoring(demo) -> None:
    from client.cli_monitor import summary_text

    c, model, best, slow = demo.conveyor, demo.found["model"], demo.found["best"], demo.found["slow"]

    async def stored():
        found = {v.version: v for v in await c.monitoring(model)}
        done = slow in found and found[slow].n_fallback >= demo.found["n_fallback"] and best in found
        return found if done else None

    found = await until(stored, 60, "the monitor's figures")
    for line in summary_text(list(found.values()), await c.alerts(model, 5)).splitlines():
        demo.say(f"  {line}")
    demo.say(f"  try: python run.py monitor {model} --alerts 5   (also Prometheus gauges ray_conveyor_model_*)")
    demo.check(f"v{slow}'s fallback rate measured", found[slow].fallback_rate > demo.settings.fallback_rate_alert,
               f"{found[slow].fallback_rate:.0%}")
    demo.check(f"v{best}'s answers counted", found[best].n_served >= demo.found["n_online"], f"{found[best].n_served}")


async def lineage(demo) -> None:
    from client.ops_text import lineage_text

    c, model, best = demo.conveyor, demo.found["model"], demo.found["best"]

    async def complete():
        found = await c.lineage(model, "production")
        return found if found.scores.n_online >= demo.found["n_online"] and found.scores.batch_jobs else None

    found = await until(complete, 60, "the lineage's score records")
    for line in lineage_text(found).splitlines():
        demo.say(f"  {line}")
    for source in demo.found["sources"]:
        batch = (await c.raw_batches(source))[0]
        demo.say(f"  joined from: {batch.batch_id}  {source}  {batch.n_rows} rows  {batch.source_path}")
    actions = [e.action for d in found.deployments for e in d.history]
    demo.check(f"production is v{best}", found.model.version == best)
    demo.check("batches and feature set recorded", found.batches and all(
        b.batch.state == "complete" and b.n_feature_rows == 569 for b in found.batches)
        and found.feature_set is not None and found.feature_set.n_rows == 569)
    demo.check("deploys and the rollback recorded", "model.deployed" in actions and "model.rollback" in actions)
    demo.check("online answers and the batch job recorded", found.scores.n_online >= demo.found["n_online"]
               and demo.found["job"] in [j.job_id for j in found.scores.batch_jobs], f"{found.scores.n_online} online")
    demo.say(f"  try: python run.py lineage {model} production")


async def where_to_look(demo) -> None:
    model = demo.found.get("model", demo.name("cancer"))
    demo.say(f"  files: {demo.folder} (the two sources as CSV)")
    for path in demo.found.get("images", []):
        demo.say(f"         {path}")
    ray = demo.conveyor.record.services.get("ray")
    if ray is not None and ray.work_dir:
        demo.say(f"  logs:  {ray.work_dir}/session_latest/logs (the actors' structured logs, while the cluster runs)")
    demo.say("  commands (on a running cluster: `python run.py cluster start`, or `demo --keep-running`):")
    for command in (f"models list {model}", f"models show {model} {demo.found.get('best', '')}".rstrip(),
                    f"monitor {model} --alerts 5", f"lineage {model} production", f"audit --subject {model}",
                    f"learners show {demo.name('phishing')}", "data batches", "console"):
        demo.say(f"    python run.py {command}")
