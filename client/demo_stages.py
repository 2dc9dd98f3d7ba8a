"""The stages of ``python run.py demo``, in order; each takes the :class:`client.demo.Demo`,
says what happened and where to look, and checks its results."""

from __future__ import annotations

import asyncio
import os
import random
import time

from client import demo_data as data
from client.demo import percentile, until

ACCURACY_FLOOR = 0.90      # online, batch: the breast-cancer data is easy
AUC_FLOOR = 0.95
STREAM_FLOOR = 0.85        # River alone reaches 0.893 on Phishing
DEADLINE_MS = 100.0
SLOW_DELAY_S = 0.25


async def ingest_and_join(demo) -> None:
    """Two CSV sources with a shared patient id, ingested and joined; the join is the training
    dataset (its feature set: both sources' feature sets side by side)."""
    c, means, worst, joined = demo.conveyor, demo.name("means"), demo.name("worst"), demo.name("joined")
    files = data.write_sources(demo.folder)
    columns = data.split_columns(data.cancer_table()[0])
    await c.set_feature_spec(means, data.numeric_spec(columns[0], label="label"))
    await c.set_feature_spec(worst, data.numeric_spec(columns[1]))
    await c.define_join(joined, [means, worst])
    for dataset, path, label in ((means, files["means"], "label"), (worst, files["worst"], None)):
        done = await c.wait_ingested(await c.ingest(dataset, path, key="id", label=label), dataset, timeout_s=300)
        demo.say(f"  {path} -> dataset {dataset}: batch {done.batch_id}, {done.n_rows} rows stored, "
                 f"{done.n_rejected} rejected")
        demo.check(f"{dataset}: every row stored", done.n_rows == 569 and done.n_rejected == 0)
    _, rows = await until(lambda: _joined(c, joined), 120, f"join {joined}")
    demo.check(f"join {joined}: one row per patient with both sources' features",
               len(rows) == 569 and all(len(v) == 30 for _, v, _ in rows), f"{len(rows)} rows")
    found = await until(lambda: _feature_set(c, joined, 569), 120, f"the feature set of join {joined}")
    demo.say(f"  join {joined}: feature set {found.feature_set_id} ({found.n_rows} rows x "
             f"{len(found.feature_names)} features: {means}'s and {worst}'s side by side)")
    demo.check("training data prepared", found.n_rows == 569 and len(found.feature_names) == 30)
    demo.found.update(dataset=joined, sources=(means, worst), files=[*files.values()])


async def _joined(c, name: str):
    run_id, rows = await c.joined_features(name)
    return (run_id, rows) if rows else None


async def _feature_set(c, dataset: str, n_rows: int):
    found = await c.feature_sets(dataset)
    return found[0] if found and found[0].n_rows >= n_rows else None


async def train(demo) -> None:
    """Several candidates trained in parallel actors and evaluated; ROC and PR curves drawn."""
    from client.training import render_curves

    c, model = demo.conveyor, demo.name("cancer")
    candidates = data.CANDIDATES[:demo.sizes["n_candidates"]]
    run_id = await c.train(data.training_config(model, demo.found["dataset"], candidates))
    demo.say(f"  training run {run_id}: {', '.join(a for _, a, _ in candidates)}")
    done = await c.wait_trained(run_id, timeout_s=600)
    images = []
    for cand in [x for x in await c.candidates(model) if x["run_id"] == run_id]:
        paths = render_curves(demo.settings, await c.candidate(model, cand["version"]))
        images += paths.values()
        best = "  <- best" if cand["candidate_id"] == done.best_candidate else ""
        demo.say(f"  v{cand['version']} {cand['name']:<9} roc_auc={cand['metrics']['roc_auc']:.4f} "
                 f"accuracy={cand['metrics'].get('accuracy', float('nan')):.4f} fit {cand['fit_s']:.2f} s{best}")
        demo.say(f"     curves: {paths.get('roc', '-')}  {paths.get('pr', '-')}")
        if best:
            demo.found["best"] = cand["version"]
    demo.check(f"{done.n_trained} candidates trained", done.n_trained == len(candidates))
    demo.check(f"best ROC AUC at least {AUC_FLOOR}", (done.score or 0) >= AUC_FLOOR, f"{done.score:.4f}")
    demo.check(f"best deployable (beats the {done.reference})", done.deployable)
    demo.check("ROC and PR images written", len(images) == 2 * len(candidates) and all(
        os.path.getsize(p) > 0 for p in images))
    demo.found.update(model=model, images=images)


async def deploy(demo) -> None:
    """The best candidate deployed: its replicas loaded and warmed before traffic moves."""
    c, model = demo.conveyor, demo.found["model"]
    done = await c.deploy(model)
    demo.say(f"  {model} v{done['version']} is production, replicas {', '.join(done['replicas'])}")
    demo.check("the best candidate is production", done["version"] == demo.found["best"])


def _patients(demo, n: int) -> list[tuple[str, dict, int]]:
    columns, rows = data.cancer_table()
    picked = random.Random(0).sample(rows, n)
    return [(key, dict(zip(columns, values)), label) for key, values, label in picked]


async def score_online(demo) -> None:
    """Online requests through the router: one Ray hop to a replica, a deadline, who answered."""
    c, model = demo.conveyor, demo.found["model"]
    answers = []
    for key, features, label in _patients(demo, demo.sizes["n_online"]):
        answers.append((await c.score(model, features, deadline_ms=DEADLINE_MS), label))
    by_key = await c.score(model, entity_key="p0", deadline_ms=DEADLINE_MS)
    correct = sum(a.label == str(label) for a, label in answers)
    latencies = [a.latency_ms for a, _ in answers]
    who = {w: sum(a.answered_by == w for a, _ in answers) for w in {a.answered_by for a, _ in answers}}
    demo.say(f"  {len(answers)} requests: {correct} correct, answered by {who}, latency p50 "
             f"{percentile(latencies, 0.5):.1f} ms, max {max(latencies):.1f} ms (deadline {DEADLINE_MS:g} ms)")
    demo.say(f"  by entity key (features from the online store): p0 -> label {by_key.label}, score "
             f"{by_key.score:.3f}, v{by_key.version} {by_key.answered_by}")
    demo.say(f"  try: python run.py score {model} --entity-key p0")
    # A late answer comes from the baseline by design (better wrong than late): the model's own
    # answers are judged for accuracy, and most answers must be the model's.
    by_model = [(a, label) for a, label in answers if a.answered_by != "baseline"]
    right = sum(a.label == str(label) for a, label in by_model)
    demo.check(f"online accuracy of the model's answers at least {ACCURACY_FLOOR}",
               len(by_model) >= len(answers) / 2 and right / len(by_model) >= ACCURACY_FLOOR,
               f"{right}/{len(by_model)}; {len(answers) - len(by_model)} late answers from the baseline")
    demo.found["n_online"] = len(answers) + 1


async def batch_score(demo) -> None:
    """A batch scoring job over the whole feature set, partitioned over the batch scorers."""
    c, model = demo.conveyor, demo.found["model"]
    job = await c.batch_score(model)
    done = await c.wait_batch_scored(job, timeout_s=300)
    labels = {key: label for key, _, label in data.cancer_table()[1]}
    results = await c.batch_scores(job)
    correct = sum(r["label"] == str(labels[r["entity_key"]]) for r in results)
    demo.say(f"  job {job}: {done['n_rows']} rows of feature set {done['feature_set_id']} scored by "
             f"v{done['version']}, {correct} correct")
    demo.check("every row scored", done["n_rows"] == 569 and len(results) == 569)
    demo.check(f"batch accuracy at least {ACCURACY_FLOOR}", correct / max(len(results), 1) >= ACCURACY_FLOOR,
               f"{correct}/{len(results)}")
    demo.found["job"] = job


async def stream_learning(demo) -> None:
    """River's Phishing streamed through the broker to an online learner: predict, then learn."""
    from client.learning import partition_of
    from client.streaming import build_events, dataset_rows, replay

    c, name = demo.conveyor, demo.name("phishing")
    made = await c.create_learner(data.learner_config(name, name), timeout_s=120)   # a loaded machine is slow
    demo.say(f"  learner {name} r{made['revision']} (River StandardScaler | LogisticRegression) on stream {name}")
    n = demo.sizes["learn_events"]
    events = build_events(dataset_rows("phishing"), name, entity_key="site", limit=n)
    rate = demo.sizes["learn_rate"]
    publishing = asyncio.create_task(replay(c, events, rate=rate))
    demo.say(f"  publishing {n} events to the broker" + (f", {rate:g} a second" if rate else ""))
    partition = partition_of("site", await c.learner_partitions())     # one entity: its events stay in order
    shown = [0.0, -1]

    async def learned():
        part = (await c.learner_report(name)).get(partition, {})
        n_learned = part.get("n_learned", 0)
        if n_learned >= n or (n_learned != shown[1] and time.monotonic() - shown[0] > 1.0):
            shown[:] = [time.monotonic(), n_learned]
            demo.say(f"  learned {n_learned:>5}/{n}, progressive accuracy "
                     f"{part.get('scores', {}).get('accuracy', 0.0):.4f}")
        return part if n_learned >= n else None

    part = await until(learned, 180, f"learner {name}: {n} events learned", interval_s=0.3)
    await publishing
    accuracy, reference = part["scores"]["accuracy"], _river_alone(n)
    demo.say(f"  progressive accuracy {accuracy:.4f}, ROC AUC {part['scores'].get('roc_auc', 0.0):.4f}; "
             f"River alone on the same events: {reference:.4f}")
    demo.say(f"  try: python run.py learners show {name}")
    demo.check(f"progressive accuracy at least {STREAM_FLOOR}", accuracy >= STREAM_FLOOR, f"{accuracy:.4f}")
    demo.check("the same as River alone", abs(accuracy - reference) < 1e-9)


def _river_alone(n: int) -> float:
    import itertools

    from river import datasets, evaluate, linear_model, metrics, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    return evaluate.progressive_val_score(itertools.islice(datasets.Phishing(), n), model, metrics.Accuracy()).get()


def stages() -> list[tuple[str, object]]:
    """(title, stage) in the order they run."""
    from client import demo_operations as ops

    return [("Two sources ingested and joined", ingest_and_join),
            ("Candidates trained and evaluated", train),
            ("The best deployed", deploy),
            ("Online scoring", score_online),
            ("Batch scoring", batch_score),
            ("Streaming online learning", stream_learning),
            ("A slow version: fallback, then automatic rollback", ops.slow_version),
            ("Monitoring summary", ops.monitoring),
            ("Lineage of the deployed model", ops.lineage),
            ("Where to look", ops.where_to_look)]
