"""Baselines: what a participant gets from scikit-learn in a few lines, per task.

A baseline is trained like a participant would train one: it reads only the
`public` location (the latest release's manifest, Parquet
tables, images and sample submission, downloaded into a temporary folder and
checked against the manifest's SHA-256), never `private`. Its predictions
go through the normal submission path as the reserved team `baseline`
(`<submissions>/baseline/<task_id>/baseline-<release>.csv`), so they are
admitted, validated, scored and shown on the leaderboard like any upload.

How it trains is tasks/baselines/training.py (no storage, no Prefect: the example algorithm
`baseline` runs the same code under the algorithm contract).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.core import catalog
from challenge.core.catalog import Manifest
from challenge.core.errors import BaselineError
from challenge.core.records import BaselineSummary
from challenge.core.run_context import RunContext
from challenge.core.storage import Storage, download_many, file_digest
from challenge.tasks.baselines.training import (
    SEED,
    ReleasedTask,
    released_task,
    train_baseline,
)
from challenge.tasks.retry import transient
from challenge.tasks.scoring.submissions import BASELINE_TEAM

# --- download, like a participant -------------------------------------------


def select_tasks(requested: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """The requested task ids (default: every task of the release); an unknown id is an error naming the known ones."""
    if not requested:
        return sorted(known)
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise BaselineError(f"unknown task id(s): {', '.join(unknown)}; the latest release has "
                            f"{', '.join(sorted(known)) or 'no task'}")
    return sorted(set(requested))


def download_task(public: Storage, release: str, task_id: str, folder: Path) -> ReleasedTask:
    """Download what a baseline needs of one released task into `folder` (streamed to disk, checked
    against the manifest's SHA-256): manifest, Parquet tables, images, sample submission."""
    prefix = catalog.task_prefix(release, task_id)
    folder.mkdir(parents=True, exist_ok=True)
    public.download_file(catalog.manifest_key(release, task_id), folder / catalog.MANIFEST)
    manifest: Manifest = catalog.parse_record(Manifest, (folder / catalog.MANIFEST).read_bytes(),
                                              public.uri_for(catalog.manifest_key(release, task_id)))
    kind = manifest.kind
    entries = {entry.path: entry for entry in manifest.files}
    wanted = [catalog.table_file(name) for name in catalog.RELEASED_TABLES[kind]] + [catalog.SAMPLE_SUBMISSION]
    missing = [path for path in wanted if path not in entries]
    if missing:
        raise BaselineError(f"{public.uri_for(prefix)}: the manifest lists no {', '.join(missing)}; is the release complete?")
    wanted += [path for path in entries if path.startswith(catalog.image_file(""))]
    for path in wanted:
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise BaselineError(f"{public.uri_for(prefix)}: manifest path {path!r} leaves the task folder")
    download_many(public, [(catalog.release_file_key(release, task_id, path), folder / path) for path in wanted])
    for path in wanted:
        if file_digest(folder / path, "sha256") != entries[path].sha256:
            raise BaselineError(f"{public.uri_for(catalog.release_file_key(release, task_id, path))}: SHA-256 differs "
                               "from the manifest's")
    return replace(released_task(folder), release=release)  # (built_in: the release its files were built in)


# --- submission ---------------------------------------------------------------


def submission_key(task_id: str, release: str) -> str:
    """Where the baseline of `task_id` for `release` is uploaded in `submissions`."""
    return catalog.submission_key(BASELINE_TEAM, task_id, f"baseline-{release}.csv")


def submit_baseline(submissions: Storage, task_id: str, release: str, csv: bytes) -> tuple[str, bool]:
    """Upload the predictions as team `baseline`; (key, uploaded). Not uploaded again when the same bytes
    are already there, so a re-run is not a new submission."""
    key = submission_key(task_id, release)
    head = submissions.head(key)
    if head is not None and head.size == len(csv) and submissions.read_bytes(key) == csv:
        return key, False
    submissions.write_bytes(key, csv)
    return key, True


def run_baseline(run: RunContext, task_id: str, release: str, seed: int = SEED) -> BaselineSummary:
    """Download, train and submit one task's baseline; opens `public` and `submissions` only, never `private`."""
    public, submissions = run.public, run.submissions
    with tempfile.TemporaryDirectory(prefix="challenge-baseline-") as tmp:
        started = time.perf_counter()
        released = download_task(public, release, task_id, Path(tmp) / task_id)
        downloaded = time.perf_counter() - started
        result = train_baseline(released, seed)
    # named after the release the task's files were built in: a task carried over unchanged keeps its baseline
    key, uploaded = submit_baseline(submissions, task_id, released.built_in or release, result.csv)
    return {"task_id": task_id, "kind": result.kind, "release": release, "model": result.model,
            "metric": result.metric, "validation_score": result.validation_score, "train_rows": result.train_rows,
            "test_rows": result.test_rows, "download_seconds": round(downloaded, 3), "train_seconds": result.seconds,
            "submission": submissions.uri_for(key), "key": key, "uploaded": uploaded}


# --- Prefect task ---------------------------------------------------------------


@task(name="baseline", task_run_name="baseline-{task_id}", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=5, retry_condition_fn=transient)
def train_and_submit_baseline(run: RunContext, task_id: str, release: str) -> BaselineSummary:
    """Prefect wrapper: one task run per challenge task (download, train, submit)."""
    summary = run_baseline(run, task_id, release)
    get_run_logger().info("%s: %s, validation %s %.4f on %d train rows; %s %s", task_id, summary["model"],
                          summary["metric"], summary["validation_score"], summary["train_rows"],
                          "uploaded" if summary["uploaded"] else "unchanged", summary["key"])
    return summary
