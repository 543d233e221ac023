"""`challenge demo DIR`: the whole lifecycle on the embedded default (local folders, Prefect's
temporary API), one progress line per step, then a second release: a contributor fixes one
example drop, release 2 rebuilds that task and carries the others over, and the demo prints what
happened to each team's results. Run it again on the same folder and every step reuses what is
there: unchanged drops are not re-gated, the releases and the uploads exist."""

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

from challenge.app.scaffold import init_challenge
from challenge.core import catalog
from challenge.core.config import load_config
from challenge.core.errors import DropsFailed
from challenge.core.run_context import RunContext
from challenge.core.storage import Storage
from challenge.core.task_runners import on_runner
from challenge.tasks.release.latest import current_release, read_answer_versions, read_latest, release_tasks
from challenge.tasks.scoring.records import load_results

RELEASE = "demo-1"
SECOND_RELEASE = "demo-2"
CHANGED = ("penguin-lab", "penguins")  # the example drop its contributor fixes before the second release
ROWS_REMOVED = 10
STEPS = 10


def sample_submissions(run: RunContext, only: list[str] | None = None, suffix: str = "") -> dict[str, bytes]:
    """Per task of the latest release (or the `only` ones): a good (team-a), a random (team-b) and an
    invalid (team-a) CSV, named good{suffix}.csv and so on.

    Only an organizer can make these: they start from the hidden answer key. Seeded, so a
    second demo produces the same bytes.
    """
    public, private = run.public, run.private
    latest = current_release(public)
    teams = [t.id for t in run.config.teams] or ["team-a"]
    good_team, random_team = teams[0], teams[1 % len(teams)]
    files: dict[str, bytes] = {}
    for task_id in sorted(only or latest.tasks):
        rng = np.random.default_rng(sum(task_id.encode()))
        versions = read_answer_versions(private, latest.release, task_id)
        version = versions.versions[-1].version if versions else 1
        answers = pq.read_table(io.BytesIO(private.read_bytes(catalog.answers_key(latest.release, task_id, version))))
        truth = answers.select(["id", "label"])
        classes = np.array(sorted(set(truth["label"].to_pylist())))
        labels = truth["label"].to_numpy(zero_copy_only=False).copy()
        flip = rng.random(len(labels)) < 0.15  # good, not perfect: 15 % of the labels guessed
        labels[flip] = rng.choice(classes, int(flip.sum()))
        samples = {
            catalog.submission_key(good_team, task_id, f"good{suffix}.csv"): truth.set_column(1, "label", pa.array(labels)),
            catalog.submission_key(random_team, task_id, f"random{suffix}.csv"): truth.set_column(
                1, "label", pa.array(rng.choice(classes, truth.num_rows))),
            catalog.submission_key(good_team, task_id, f"invalid{suffix}.csv"): truth.slice(1),  # one id missing
        }
        for key, table in samples.items():
            out = io.BytesIO()
            pa_csv.write_csv(table, out)
            files[key] = out.getvalue()
    return files


def fix_example_drop(intake: Storage, done: Path) -> bool:
    """The contributor of CHANGED fixes its drop: its last ROWS_REMOVED rows go. Once: `done` (a file in the
    demo folder) records it; False when it was done before."""
    contributor, task = CHANGED
    tables = [i.key for i in intake.list(catalog.drop_prefix(contributor, task)) if i.key.endswith(".csv")]
    if not tables or done.exists():
        return False
    lines = intake.read_bytes(tables[0]).decode("utf-8").splitlines(keepends=True)
    intake.write_bytes(tables[0], "".join(lines[:-ROWS_REMOVED]).encode())
    done.write_text(f"{ROWS_REMOVED} rows removed from {tables[0]} by the demo\n", encoding="utf-8")
    return True


def what_happened(records: list[dict[str, Any]], released: dict[str, Any]) -> list[str]:
    """One line per team: its results kept, superseded (their task changed) and new, per task."""
    lines = []
    for team in sorted({r["team"] for r in records if r.get("task_id") in released}):
        mine = [r for r in records if r["team"] == team and r.get("task_id") in released]
        kept = sorted({r["task_id"] for r in mine if r["status"] == "scored" and r.get("release") == RELEASE})
        superseded = sorted({r["task_id"] for r in mine if r["status"] == "superseded"})
        new = sorted({r["task_id"] for r in mine if r["status"] == "scored" and r.get("release") == SECOND_RELEASE})
        parts = ([f"kept on the boards: {', '.join(kept)}"] if kept else []) + (
            [f"superseded (task changed, resubmit): {', '.join(superseded)}"] if superseded else []) + (
            [f"scored against {SECOND_RELEASE}: {', '.join(new)}"] if new else [])
        lines.append(f"      {team}: {'; '.join(parts) or 'nothing scored'}")
    return lines


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
    """Init (or reuse) a challenge in `folder`, then collect, publish, baselines, samples, score; then a
    contributor's fix, a second release, the changed task resubmitted and scored; the leaderboard."""
    out = out or sys.stdout
    from challenge.app.board_text import print_board
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
        public = state["run"].public
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
        files = sample_submissions(state["run"])
        new = upload_new(state["run"].submissions, files)
        return f"{len(files)} sample submissions (good, random, invalid per task), {new} new"

    def score() -> str:
        result = on_runner(score_submissions, task_runner)(config_path=str(config_path))
        state["board"] = result.board
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.statuses.items())) or "nothing new"
        return f"{result.pending} new submission(s): {statuses}"

    progress.run("init", init)
    state["run"] = RunContext(load_config(config_path))
    progress.run("collect", collect)
    progress.run("publish", publish)
    progress.run("baseline", baselines)
    progress.run("submit", samples)
    progress.run("score", score)

    def update() -> str:
        fixed = fix_example_drop(state["run"].intake, folder / ".demo-drop-fixed")
        summary = collect()
        what = f"{CHANGED[0]} removed {ROWS_REMOVED} rows from {CHANGED[1]}" if fixed else f"{CHANGED[1]} was fixed before"
        return f"{what}; collect: {summary}"

    def second_release() -> str:
        public = state["run"].public
        if read_latest(public).release == SECOND_RELEASE:
            return f"release {SECOND_RELEASE} already published"
        result = on_runner(publish_release, task_runner)(config_path=str(config_path), release=SECOND_RELEASE)
        return f"release {SECOND_RELEASE}: " + "; ".join(f"{s['task_id']} {s['action']}" for s in result.summaries)

    def rescore() -> str:
        on_runner(run_baselines, task_runner)(config_path=str(config_path), tasks=[CHANGED[1]])
        upload_new(state["run"].submissions, sample_submissions(state["run"], [CHANGED[1]], "-2"))
        result = on_runner(score_submissions, task_runner)(config_path=str(config_path))
        state["board"] = result.board
        public, private = state["run"].public, state["run"].private
        released = release_tasks(public, read_latest(public), private)
        lines = what_happened(load_results(private), released)
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.statuses.items())) or "nothing new"
        return (f"{CHANGED[1]} resubmitted (its baseline retrained): {statuses}; {result.superseded} result(s) superseded this run\n"
                + "\n".join(lines))

    progress.run("update", update)
    progress.run("release2", second_release)
    progress.run("rescore", rescore)
    page = state["run"].public.uri_for(catalog.PAGE)
    progress.run("board", lambda: f"written to {page}")
    print(file=out)
    print_board(state["board"], tasks=True, out=out)
    print(f"\nleaderboard page: {page}\ndone in {time.monotonic() - progress.started:.0f} s", file=out)
    from challenge.app.prefect_setup import runs_ui_url

    runs = runs_ui_url()
    print(f"the demo's flow runs in Prefect's UI: {runs}" if runs else "the demo's flow runs are in Prefect's database "
          "under PREFECT_HOME (temporary API: `challenge server start` shows them in a UI)", file=out)
    return {"config": str(config_path), "board": state["board"], "page": page}
