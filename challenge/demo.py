"""`challenge demo DIR`: the whole lifecycle on the embedded default (local folders, Prefect's
temporary API), one progress line per step. Run it again on the same folder and every step
reuses what is there: unchanged drops are not re-gated, the release and the uploads exist."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge import catalog
from challenge.config import ChallengeConfig, load_config
from challenge.errors import DropsFailed
from challenge.scaffold import init_challenge
from challenge.storage import Storage, open_location
from challenge.task_runners import on_runner
from challenge.tasks.releases import current_release, read_latest

RELEASE = "demo-1"
STEPS = 7


def sample_submissions(config: ChallengeConfig) -> dict[str, bytes]:
    """Per task of the latest release: a good (team-a), a random (team-b) and an invalid (team-a) CSV.

    Only an organizer can make these: they start from the hidden answer key. Seeded, so a
    second demo produces the same bytes.
    """
    public, private = open_location(config, "public"), open_location(config, "private")
    latest = current_release(public)
    teams = [t.id for t in config.teams] or ["team-a"]
    good_team, random_team = teams[0], teams[1 % len(teams)]
    files: dict[str, bytes] = {}
    for task_id in sorted(latest.tasks):
        rng = np.random.default_rng(sum(task_id.encode()))
        answers = pq.read_table(io.BytesIO(private.read_bytes(catalog.answers_key(latest.release, task_id))))
        truth = answers.select(["id", "label"])
        classes = np.array(sorted(set(truth["label"].to_pylist())))
        labels = truth["label"].to_numpy(zero_copy_only=False).copy()
        flip = rng.random(len(labels)) < 0.15  # good, not perfect: 15 % of the labels guessed
        labels[flip] = rng.choice(classes, int(flip.sum()))
        samples = {
            catalog.submission_key(good_team, task_id, "good.csv"): truth.set_column(1, "label", pa.array(labels)),
            catalog.submission_key(random_team, task_id, "random.csv"): truth.set_column(
                1, "label", pa.array(rng.choice(classes, truth.num_rows))),
            catalog.submission_key(good_team, task_id, "invalid.csv"): truth.slice(1),  # one id missing
        }
        for key, table in samples.items():
            out = io.BytesIO()
            pa_csv.write_csv(table, out)
            files[key] = out.getvalue()
    return files


def upload_new(submissions: Storage, files: dict[str, bytes]) -> int:
    """Upload the files not there yet (an upload is a submission: never replace one)."""
    new = [key for key in files if not submissions.exists(key)]
    for key in new:
        submissions.write_bytes(key, files[key])
    return len(new)


class Progress:
    """`[n/7] step  what happened  (seconds)` lines."""

    def __init__(self, out: TextIO):
        self.out, self.step, self.started = out, 0, time.monotonic()

    def run(self, name: str, action: Callable[[], str]) -> None:
        self.step += 1
        line = f"[{self.step}/{STEPS}] {name:<9}"
        tty = self.out.isatty()
        if tty:
            print(f"{line} ...", end="", file=self.out, flush=True)
        t0 = time.monotonic()
        summary = action()
        print(f"{chr(13) if tty else ''}{line} {summary}  ({time.monotonic() - t0:.1f} s)", file=self.out, flush=True)


def run_demo(folder: str | Path, out: TextIO | None = None, task_runner: str | None = None) -> dict[str, Any]:
    """Init (or reuse) a challenge in `folder`, then collect, publish, baselines, samples, score, leaderboard."""
    out = out or sys.stdout
    from challenge.board_text import print_board
    from challenge.flows.collect_datasets import collect_datasets
    from challenge.flows.publish_release import publish_release
    from challenge.flows.run_baselines import run_baselines
    from challenge.flows.score_submissions import score_submissions

    folder = Path(folder)
    config_path = folder / "challenge.yaml"
    progress = Progress(out)
    state: dict[str, Any] = {}

    def init() -> str:
        if config_path.exists():
            return f"reusing {config_path}"
        init_challenge(folder, name="demo-challenge", title="Demo challenge", with_examples=True)
        return f"wrote {config_path} and the example drops under {folder / 'intake'}"

    def collect() -> str:
        try:
            summary = on_runner(collect_datasets, task_runner)(config_path=str(config_path))
        except DropsFailed as failed:  # the example drops pass; a user's own additions may not
            summary = failed.result
        counts = summary.counts()
        failed = "".join(f"\n      FAIL {o.drop}: {'; '.join(o.failures)}" for o in summary.failed)
        return (f"{counts['drops']} drop(s): {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['unchanged']} unchanged{failed}")

    def publish() -> str:
        public = open_location(state["config"], "public")
        latest = read_latest(public)
        if latest is not None:
            return f"release {latest.release} already published ({', '.join(latest.tasks)})"
        result = on_runner(publish_release, task_runner)(config_path=str(config_path), release=RELEASE)
        return f"release {RELEASE}: {', '.join(result.task_ids)} at {result.location}"

    def baselines() -> str:
        result = on_runner(run_baselines, task_runner)(config_path=str(config_path))
        scores = ", ".join(f"{s['task_id']} {s['metric']} {s['validation_score']:.3f}" for s in result.baselines)
        return f"{len(result.baselines)} trained (validation: {scores}); {result.uploaded} uploaded as team baseline"

    def samples() -> str:
        files = sample_submissions(state["config"])
        new = upload_new(open_location(state["config"], "submissions"), files)
        return f"{len(files)} sample submissions (good, random, invalid per task), {new} new"

    def score() -> str:
        result = on_runner(score_submissions, task_runner)(config_path=str(config_path))
        state["board"] = result.board
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.statuses.items())) or "nothing new"
        return f"{result.pending} new submission(s): {statuses}"

    progress.run("init", init)
    state["config"] = load_config(config_path)
    progress.run("collect", collect)
    progress.run("publish", publish)
    progress.run("baseline", baselines)
    progress.run("submit", samples)
    progress.run("score", score)
    page = open_location(state["config"], "public").uri_for(catalog.PAGE)
    progress.run("board", lambda: f"written to {page}")
    print(file=out)
    print_board(state["board"], tasks=True, out=out)
    print(f"\nleaderboard page: {page}\ndone in {time.monotonic() - progress.started:.0f} s", file=out)
    return {"config": str(config_path), "board": state["board"], "page": page}
