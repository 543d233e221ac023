"""Scale-out benchmark: the `collect` flow gating 4 drops, and `score-submissions` scoring 4 tasks, on
prefect-dask's DaskTaskRunner over a LocalCluster of 2 worker processes, against the thread runner.

    python bench/dask_runner.py [--rows 250000] [--drops 4] [--workers 2] [--submissions 8] [--no-scoring]

The cluster is started once, before timing, and the flows reach it by its scheduler address
(`CHALLENGE_DASK_ADDRESS` in production); its start-up, the workers' imports (pandas, GX, the package)
and the first ("cold") run on the fresh workers are reported apart. The flows run on Prefect's real engine
against a temporary API (`prefect_test_harness`). Each timed figure is the best of `--repeats` runs; threads and Dask take turns.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
for _name, _value in (("GX_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1"),
                      ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("PREFECT_LOGGING_LEVEL", "WARNING")):
    os.environ.setdefault(_name, _value)

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from run import generate_drop

CONTRIBUTOR = "bench-team"


def generate_drops(folder: Path, rows: int, count: int) -> list[str]:
    """`count` classification drops (bench/run.py's generator, each its own task id and seed) under folder/intake."""
    task_ids = [f"task-{i}" for i in range(count)]
    for seed, task_id in enumerate(task_ids):
        scratch = folder / f"generate-{seed}"
        generate_drop(scratch, rows, seed=seed)
        drop = folder / "intake" / CONTRIBUTOR / task_id
        drop.parent.mkdir(parents=True, exist_ok=True)
        (scratch / "intake" / CONTRIBUTOR / "big-task").rename(drop)
        spec = drop / "task.yaml"
        spec.write_text(spec.read_text().replace("task_id: big-task", f"task_id: {task_id}"))
        shutil.rmtree(scratch)
    return task_ids


def write_challenge(folder: Path, teams: int) -> str:
    """challenge.yaml for local locations under `folder` (visible to a LocalCluster's workers); returns its path."""
    from challenge.core.config import ChallengeConfig, write_config

    config = ChallengeConfig.model_validate({
        "name": "bench-dask", "title": "Dask benchmark",
        "storage": {n: str(folder / n) for n in ("intake", "public", "private", "submissions")},
        "policy": {"max_submissions_per_day": 1000},
        # Generated text repeats a small vocabulary: the leak checks run but may not fail.
        "release": {"max_duplicate_fraction": 1, "max_text_duplicate_fraction": 1},
        "teams": [{"id": f"team-{i}", "name": f"Team {i}"} for i in range(teams)],
    })
    return str(write_config(config, folder / "challenge.yaml"))


def upload_submissions(folder: Path, task_ids: list[str], per_task: int, teams: int) -> None:
    """`per_task` CSV submissions per task (the test ids, labels 30% wrong), spread over the teams."""
    rng = np.random.default_rng(1)
    for task_id in task_ids:
        answers = pq.read_table(folder / "private" / "releases" / "bench" / task_id / "answers.parquet")
        labels = answers["label"].to_numpy(zero_copy_only=False)
        classes = np.unique(labels)
        for i in range(per_task):
            guess = labels.copy()
            wrong = rng.random(len(guess)) < 0.3
            guess[wrong] = rng.choice(classes, int(wrong.sum()))
            target = folder / "submissions" / f"team-{i % teams}" / task_id / f"sub-{i:03d}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            pa_csv.write_csv(pa.table({"id": answers["id"], "label": pa.array(guess)}), target)


def forget_results(folder: Path) -> None:
    """Delete the result records, their index and feedback, so that the next scoring run scores every upload again."""
    for path in (folder / "private" / "results", folder / "private" / "cache"):
        shutil.rmtree(path, ignore_errors=True)
    for feedback in (folder / "submissions").rglob("*.result.json"):
        feedback.unlink()


def best_of(repeats: int, runs: dict[str, Callable[[], Any]], before: Callable[[], None] = lambda: None) -> dict[str, float]:
    """The shortest wall time of each of `runs` over `repeats` rounds (each call after `before`); the runs
    take turns within a round, so that a load from outside slows them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            before()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(seconds) for name, seconds in times.items()}


def spread(stream: list[dict[str, Any]], name: str, runs: int) -> dict[str, Any]:
    """How the Dask tasks whose key starts with `name` ran over `runs` flow runs: how many, on how many
    workers, and per run: their summed time, the time at least one ran, the time two or more ran at once."""
    tasks = [(s["worker"], s["startstops"][-1]["start"], s["startstops"][-1]["stop"])
             for s in stream if s["key"].startswith(name)]
    edges = sorted([(start, 1) for _, start, _ in tasks] + [(stop, -1) for _, _, stop in tasks])
    busy = overlap = last = 0.0
    active = 0
    for moment, step in edges:
        busy += (moment - last) if active >= 1 else 0.0
        overlap += (moment - last) if active >= 2 else 0.0
        active, last = active + step, moment
    return {"dask_tasks": len(tasks), "workers_used": len({w for w, _, _ in tasks}),
            "task_seconds": sum(stop - start for _, start, stop in tasks) / runs,
            "busy_seconds": busy / runs, "overlap_seconds": overlap / runs}


def record(step: str, size: int, seconds: float, baseline_seconds: float, **extra: Any) -> dict[str, Any]:
    return {"step": step, "size": size, "unit": "rows", "seconds": seconds, "baseline": "thread runner",
            "baseline_seconds": baseline_seconds, "ratio": seconds / baseline_seconds, "target": None,
            "peak_rss": None, "own_rss": None, "arrow_bytes": None, "rss_ratio": None, "rss_target": None, **extra}


def measure(size: int, drops: int = 4, workers: int = 2, repeats: int = 3, submissions: int = 8,
            scoring: bool = True) -> list[dict[str, Any]]:
    """Gate `drops` drops of `size` rows (and score `submissions` uploads per task) on threads and on Dask.

    `size` is the rows of each drop. Records: collect (warm workers), collect including the cluster's
    start-up and the first run on fresh workers, and scoring; each against the thread runner."""
    from distributed import Client, LocalCluster, get_task_stream
    from prefect.testing.utilities import prefect_test_harness

    from challenge.core.task_runners import make_task_runner
    from challenge.flows.collect_datasets import collect_datasets
    from challenge.flows.publish_release import publish_release
    from challenge.flows.score_submissions import score_submissions

    teams = 4
    with tempfile.TemporaryDirectory(prefix="challenge-bench-dask-") as tmp, \
            prefect_test_harness(server_startup_timeout=180):
        folder = Path(tmp)
        task_ids = generate_drops(folder, size, drops)
        config_path = write_challenge(folder, teams)
        threads = collect_datasets.with_options(task_runner=make_task_runner("threads"))

        def collect(flow: Any) -> Any:
            summary = flow(config_path=config_path, force=True)
            if summary.counts()["passed"] != drops:
                raise SystemExit(f"the gate did not pass every drop: {[o.failures for o in summary.failed]}")
            return summary

        collect(threads)  # warm: imports, Prefect's API, GX's first context in this process

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        cluster_seconds = time.perf_counter() - start
        try:
            start = time.perf_counter()  # what `dask worker --preload challenge.tasks.intake.gate_tasks` does at worker start
            client.run(importlib.import_module, "challenge.tasks.intake.gate_tasks")
            import_seconds = time.perf_counter() - start
            on_dask = collect_datasets.with_options(task_runner=make_task_runner("dask", address=cluster.scheduler_address))
            cold_seconds = best_of(1, {"dask": lambda: collect(on_dask)})["dask"]
            with get_task_stream(client=client) as stream:
                best = best_of(repeats, {"threads": lambda: collect(threads), "dask": lambda: collect(on_dask)})
            records = [
                record(f"collect-{drops}-drops-dask", size, best["dask"], best["threads"], drops=drops, workers=workers,
                       **spread(stream.data, "gate_and_report_drop", repeats)),
                record(f"collect-{drops}-drops-dask-cold", size, cluster_seconds + import_seconds + cold_seconds,
                       best["threads"], drops=drops, workers=workers, cluster_start_seconds=cluster_seconds,
                       worker_import_seconds=import_seconds, first_run_seconds=cold_seconds),
            ]
            if scoring:
                publish_release(config_path=config_path, release="bench")  # set-up, not timed
                upload_submissions(folder, task_ids, submissions, teams)
                expected = {"scored": drops * submissions}

                def score(flow: Any) -> None:
                    run = flow(config_path=config_path)
                    if run.statuses != expected:
                        raise SystemExit(f"scoring: expected {expected}, got {run.statuses} ({run.errors})")

                score_threads = score_submissions.with_options(task_runner=make_task_runner("threads"))
                score_dask = score_submissions.with_options(
                    task_runner=make_task_runner("dask", address=cluster.scheduler_address))
                best_of(1, {"threads": lambda: score(score_threads), "dask": lambda: score(score_dask)},
                        lambda: forget_results(folder))  # warm: the scoring imports of both
                with get_task_stream(client=client) as stream:
                    best = best_of(repeats, {"threads": lambda: score(score_threads), "dask": lambda: score(score_dask)},
                                   lambda: forget_results(folder))
                records.append(record(f"score-{drops}-tasks-dask", size, best["dask"], best["threads"],
                                      tasks=drops, submissions=drops * submissions, workers=workers,
                                      **spread(stream.data, "score_batch", repeats)))
        finally:
            client.close()
            cluster.close()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=250_000, help="rows of each drop")
    parser.add_argument("--drops", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (one thread each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=8, help="uploads per task to score")
    parser.add_argument("--no-scoring", action="store_true")
    args = parser.parse_args()
    records = measure(args.rows, args.drops, args.workers, args.repeats, args.submissions, not args.no_scoring)
    print(f"Dask LocalCluster of {args.workers} worker processes (1 thread each) vs the thread runner, {args.drops} "
          f"drops of {args.rows:,} rows, {os.cpu_count()} cores (load average now {os.getloadavg()[0]:.1f}), "
          f"best of {args.repeats}")
    for r in records:
        line = (f"  {r['step']}: {r['seconds']:.1f} s vs {r['baseline']} {r['baseline_seconds']:.1f} s: "
                f"ratio {r['ratio']:.2f}x (target {r['target']})")
        if "cluster_start_seconds" in r:
            line += (f"; = cluster start {r['cluster_start_seconds']:.1f} s + the workers' imports "
                     f"{r['worker_import_seconds']:.1f} s + first run {r['first_run_seconds']:.1f} s")
        if "dask_tasks" in r:
            line += (f"\n    {r['dask_tasks']} Dask task(s) over the runs, on {r['workers_used']} worker(s); per run "
                     f"(mean): {r['task_seconds']:.1f} s in tasks, a task running for {r['busy_seconds']:.1f} s, "
                     f"two at once for {r['overlap_seconds']:.1f} s")
        print(line)


if __name__ == "__main__":
    main()
