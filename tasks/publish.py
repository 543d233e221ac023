"""Publish a release (SPEC §7): check its name and tasks, build each task's files (tasks/release_build.py),
upload and verify them (tasks/release_upload.py); only when every task is up does finish_release write
the release marker and `<public>/latest.json`.
"""

from __future__ import annotations

import logging
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge import catalog
from challenge.catalog import Latest
from challenge.config import ChallengeConfig
from challenge.storage import Storage, download_many, open_location
from challenge.tasks.leakage import LeakFinding
from challenge.tasks.opaque_ids import load_key
from challenge.tasks.release_build import PublishError, build_task_release
from challenge.tasks.release_upload import clear_incomplete, upload_and_verify
from challenge.tasks.retry import transient
from challenge.tasks.staged import list_staged, load_staged_task

__all__ = ["PublishError", "publish_task", "publish_task_task", "prepare_release", "finish_release"]

RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_release_name(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")


def check_release_name(name: str) -> str:
    if not RELEASE_NAME.match(name) or ".." in name:
        raise PublishError(
            f"release name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(no '/' or other path characters), at most 64"
        )
    return name


def release_exists(public: Storage, release: str) -> bool:
    """A release is complete once its release.json marker is written."""
    return public.exists(catalog.release_marker_key(release))


def finish_release(public: Storage, release: str, task_ids: list[str]) -> Latest:
    """Write the release marker, then latest.json (last: the release becomes visible)."""
    marker = Latest(release=release, published_at=datetime.now(timezone.utc).isoformat(), tasks=sorted(task_ids))
    catalog.write_record(public, catalog.release_marker_key(release), marker)
    catalog.write_record(public, catalog.LATEST, marker)
    return marker


def open_locations(config: ChallengeConfig) -> tuple[Storage, Storage]:
    """The public and private storage locations of the challenge."""
    return open_location(config, "public"), open_location(config, "private")


def _finding_line(finding: LeakFinding) -> str:
    """A leak finding as the organizer reads it (with label agreement, which the manifest leaves out)."""
    agreement = f" ({finding.label_agreement})" if finding.label_agreement else ""
    return finding.detail + agreement + ("" if finding.refusable else " [reported; never refuses]")


def publish_task(config: ChallengeConfig, task_id: str, release: str) -> dict[str, Any]:
    """Build one task's release files, upload them and verify them; returns its summary."""
    public, private = open_locations(config)
    key = load_key(private)  # read here, never passed around: task parameters show in the Prefect UI
    with tempfile.TemporaryDirectory(prefix="challenge-release-") as tmp:
        staged = load_staged_task(private, task_id, Path(tmp))
        def fetch_images(jobs: list[tuple[str, Path]]) -> None:
            download_many(private, [(catalog.staged_file_key(staged.prefix, catalog.image_file(original)), path)
                                    for original, path in jobs])

        built = build_task_release(staged, config, key, fetch_images, release, Path(tmp) / "out")
        upload_and_verify(private, built.private_dir, catalog.task_prefix(release, task_id))
        keys = upload_and_verify(public, built.public_dir, catalog.task_prefix(release, task_id))
        return {
            "task_id": task_id, "kind": built.kind, "counts": built.counts, "classes": built.classes,
            "files": len(keys), "notes": built.notes, "leaks": [_finding_line(f) for f in built.leaks],
            "card": public.uri_for(catalog.card_key(release, task_id)),
        }


@task(name="publish-task", task_run_name="publish-{task_id}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=transient)
def publish_task_task(config: ChallengeConfig, task_id: str, release: str) -> dict[str, Any]:
    """Prefect wrapper: one task run per challenge task (uploads run in threads inside it)."""
    summary = publish_task(config, task_id, release)
    get_run_logger().info("%s: %s", task_id, summary["counts"])
    return summary


def prepare_release(config: ChallengeConfig, release: str, task_ids: list[str] | None) -> dict[str, str | None]:
    """Check the release name and the tasks; clear what an interrupted run of this release left.

    Returns task id → kind (None for tasks staged before kinds were recorded).
    """
    public, private = open_locations(config)
    check_release_name(release)
    if release_exists(public, release):
        raise PublishError(
            f"release '{release}' already exists at {public.uri_for(catalog.release_prefix(release))}; "
            "releases are immutable: choose another name"
        )
    staged = list_staged(private)
    selected = sorted(set(task_ids)) if task_ids else sorted(staged)
    missing = [t for t in selected if t not in staged]
    if missing:
        raise PublishError(
            f"cannot publish {', '.join(missing)}: not staged (never passed the quality gate). "
            f"Run `challenge collect` and read the reports under {private.uri_for(catalog.REPORTS)}"
        )
    if not selected:
        raise PublishError(f"nothing to publish: no staged task under {private.uri_for(catalog.STAGED)}; run `challenge collect` first")
    prefix = catalog.release_prefix(release)
    cleared = clear_incomplete(public, prefix) + clear_incomplete(private, prefix)
    if cleared:
        get_logger().warning("release %s was left incomplete by an earlier run: removed %d object(s), restarting", release, cleared)
    return {task_id: staged[task_id].kind for task_id in selected}


def get_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, else the module logger."""
    try:
        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)

