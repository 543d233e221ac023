"""Benchmark of the boards' bootstrap intervals (issue 14).

1. 50 teams × 10 tasks × 100,000 test rows × 1,000 resamples (5 three-class, 3 ten-class and 2 matching
   tasks): the time of every task's resampled scores, score intervals, rank intervals and ties. Target
   ≤ 60 s on 2 cores. Baseline, measured in the same run: the naive paired bootstrap (a Python loop over
   resamples, numpy counts per team) on one task and 10 resamples, extrapolated to the whole job.
2. A scoring run with nothing new: `add_intervals` on the same board when every task is in the cache
   (local storage). Target ≤ 1 s.

    python bench/intervals.py [--teams 50] [--tasks 10] [--rows 100000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from challenge.core.config import ChallengeConfig
from challenge.core.metrics import score
from challenge.core.run_context import RunContext
from challenge.tasks.boards import intervals as board_intervals
from challenge.tasks.boards.bootstrap import bootstrap_scores, summarize
from challenge.tasks.release.latest import ReleasedTask

KINDS = [(3, "macro_f1")] * 5 + [(10, "accuracy")] * 3 + [(2, "f1")] * 2


def task_data(rng: np.random.Generator, classes: int, teams: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.integers(0, classes, rows)
    skill = np.linspace(0.5, 0.95, teams)[:, None]
    preds = np.where(rng.random((teams, rows)) < skill, truth, rng.integers(0, classes, (teams, rows)))
    return truth, preds


def naive(truth: np.ndarray, preds: np.ndarray, metric: str, resamples: int, seed: int) -> np.ndarray:
    """The peer: per resample, index the rows and score every team (numpy counts, Python loops)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(preds), resamples))
    for b in range(resamples):
        idx = rng.integers(0, len(truth), len(truth))
        for t, pred in enumerate(preds):
            out[t, b] = score(metric, truth[idx], pred[idx])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    kinds = (KINDS * (args.tasks // len(KINDS) + 1))[:args.tasks]
    print(f"intervals: {args.teams} teams × {args.tasks} tasks × {args.rows:,} rows × {args.resamples} resamples "
          f"({os.cpu_count()} cores)")

    truth, preds = task_data(rng, 3, args.teams, args.rows)
    peer_resamples = 10
    t0 = time.perf_counter()
    naive(truth, preds, "macro_f1", peer_resamples, 1)
    peer = (time.perf_counter() - t0) * args.resamples / peer_resamples * args.tasks

    samples: dict[str, np.ndarray] = {}
    total = 0.0
    for i, (classes, metric) in enumerate(kinds):
        truth, preds = task_data(rng, classes, args.teams, args.rows)
        t0 = time.perf_counter()
        samples[f"task-{i}"] = bootstrap_scores(truth, preds, classes, metric, args.resamples, i)
        summarize(samples[f"task-{i}"], [True] * args.teams)
        total += time.perf_counter() - t0
    print(f"  all tasks: {total:.1f} s (target ≤ 60 s: {'met' if total <= 60 else 'NOT met'}); "
          f"naive paired bootstrap (extrapolated from {peer_resamples} resamples of one task): {peer:.0f} s; "
          f"ratio {total / peer:.3f}")

    # a scoring run with nothing new: every task's intervals come from the cache
    teams = [f"team-{t:02d}" for t in range(args.teams)]
    board = {"release": "r1", "final": False, "benchmark": False, "tasks": {}, "tracks": {}}
    released = {}
    for task_id, (classes, metric) in zip(samples, kinds):
        released[task_id] = ReleasedTask(task_id, "matching" if classes == 2 else "classification", metric, task_id,
                                         f"{task_id}/README.md", f"{task_id:0<64}")
        board["tasks"][task_id] = {"entries": [{"team": team, "rank": r + 1, "score": 0.5,
                                                "_record": {"submission_id": f"{team}-{task_id}"}}
                                               for r, team in enumerate(teams)]}
    for track in ("classification", "matching"):
        tasks = [t for t, task in released.items() if task.kind == track]
        if not tasks:
            continue
        board["tracks"][track] = {"tasks": tasks, "entries": [{"team": team, "rank": r + 1, "score": 0.5}
                                                              for r, team in enumerate(teams)]}

    def computed(run, release, task, entries, part):  # noqa: ANN001, ANN202, ARG001
        return samples[task.task_id], [True] * len(entries)

    with tempfile.TemporaryDirectory() as tmp:
        run = RunContext(ChallengeConfig.model_validate({"name": "bench", "title": "bench", "storage": {
            n: str(Path(tmp) / n) for n in ("intake", "public", "private", "submissions")}}))
        private = run.private
        with mock.patch.object(board_intervals, "_task_samples", computed):
            t0 = time.perf_counter()
            board_intervals.add_intervals(board, released, run)
            first = time.perf_counter() - t0
        version = private.head("cache/intervals.json").version
        for info in board["tasks"].values():
            for entry in info["entries"]:
                for key in ("ci95", "rank_ci95", "tied_with_above"):
                    entry.pop(key)
        t0 = time.perf_counter()
        board_intervals.add_intervals(board, released, run)  # cache hits only
        again = time.perf_counter() - t0
        assert private.head("cache/intervals.json").version == version, "the cache was rewritten"
    print(f"  nothing new (every task cached): {again:.3f} s (target ≤ 1 s: {'met' if again <= 1 else 'NOT met'}); "
          f"the first run's summaries and cache writes without resampling: {first:.2f} s")


if __name__ == "__main__":
    main()
