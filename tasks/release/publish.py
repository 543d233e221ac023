"""Publish a release (SPEC §7): check its name and tasks, then for every staged task either build its
files (tasks/release/build.py) and upload and verify them (tasks/release/upload.py), or carry them over
byte for byte from the current release when nothing they depend on changed. Only when every task is up
does finish_release write the release marker and `<public>/latest.json`.
"""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.core import catalog
from challenge.core.catalog import Latest, Manifest, StagedPointer
from challenge.core.config import ChallengeConfig
from challenge.core.logs import step_logger
from challenge.core.records import TaskSummary
from challenge.core.run_context import RunContext
from challenge.core.storage import TRANSFER_THREADS, ObjectExists, Storage, download_many
from challenge.tasks.intake.staged import list_staged, load_staged_task
from challenge.tasks.release.build import PublishError, build_inputs, build_task_release
from challenge.tasks.release.latest import read_answer_versions, read_latest
from challenge.tasks.release.leaks.checks import LeakFinding
from challenge.tasks.release.opaque_ids import load_key
from challenge.tasks.release.upload import clear_incomplete, upload_and_verify
from challenge.tasks.retry import transient

__all__ = ["PublishError", "TaskPlan", "carry_over_task_files", "finish_release", "plan_release", "prepare_release",
           "publish_task", "build_and_publish_task"]

log = step_logger(__name__)


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


def finish_release(public: Storage, release: str, task_ids: list[str], withdrawn: dict[str, str] | None = None) -> Latest:
    """Write the release marker, then latest.json (last: the release becomes visible). `withdrawn`: the
    tasks left out on purpose, with the reason shown on the leaderboard page.

    The marker is written only if absent (a conditional write): of two runs publishing the same release name
    at once, exactly one writes it and then latest.json; the other gets a PublishError and leaves latest.json
    alone. (Where the server ignores If-None-Match, prepare_release's check of the marker is the only guard.)
    latest.json is a plain write: a pointer that each publish moves to its own complete release, the last
    writer's standing; a create-only write cannot express "move it forward".
    """
    marker = Latest(release=release, published_at=datetime.now(timezone.utc).isoformat(), tasks=sorted(task_ids),
                    withdrawn=dict(sorted((withdrawn or {}).items())))
    marker_key = catalog.release_marker_key(release)
    try:
        public.write_bytes(marker_key, marker.to_json(), if_absent=True)
    except ObjectExists:
        raise PublishError(f"release '{release}' was published by another run at the same time "
                           f"({public.uri_for(marker_key)} was written first); releases are immutable: check that "
                           "release, or publish again under another name") from None
    catalog.write_record(public, catalog.LATEST, marker)
    return marker


def _finding_line(finding: LeakFinding) -> str:
    """A leak finding as the organizer reads it (with label agreement, which the manifest leaves out)."""
    agreement = f" ({finding.label_agreement})" if finding.label_agreement else ""
    return finding.detail + agreement + ("" if finding.refusable else " [reported; never refuses]")


def publish_task(run: RunContext, task_id: str, release: str) -> TaskSummary:
    """Build one task's release files, upload them and verify them; returns its summary."""
    config, public, private = run.config, run.public, run.private
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
            "card": public.uri_for(catalog.card_key(release, task_id)), "action": "built",
        }


def _copy_folder(location: Storage, source: str, release: str, task_id: str) -> int:
    """Copy a task's folder of release `source` into `release` and check every copy's size (and MD5, where
    both versions are one); returns how many objects. A corrections trail that earlier versions wrote into the
    release folder stays behind: the trail of `release` is written where it now lives (catalog.corrections_key)."""
    prefix = catalog.task_prefix(source, task_id) + "/"
    originals = {i.key[len(prefix):]: i for i in location.list(prefix) if i.key[len(prefix):] != catalog.LEGACY_CORRECTIONS}
    pairs = [(info.key, catalog.release_file_key(release, task_id, path)) for path, info in originals.items()]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(lambda pair: location.copy(*pair), pairs))
    copies = {i.key[len(catalog.task_prefix(release, task_id)) + 1:]: i
              for i in location.list(catalog.task_prefix(release, task_id) + "/")}
    for path, info in originals.items():
        copy = copies.get(path)
        md5s = "-" not in info.version and copy is not None and "-" not in copy.version
        if copy is None or copy.size != info.size or (md5s and copy.version != info.version):
            raise PublishError(f"{location.uri_for(catalog.release_file_key(release, task_id, path))}: the copy of "
                               f"{location.uri_for(info.key)} is missing or differs; publish again")
    return len(originals)


def carry_task(run: RunContext, task_id: str, source: str, release: str) -> TaskSummary:
    """Carry one task's files (public and private) over from release `source`, byte for byte."""
    public, private = run.public, run.private
    _copy_folder(private, source, release, task_id)
    files = _copy_folder(public, source, release, task_id)
    manifest = catalog.read_manifest(public, release, task_id)
    split = (manifest.model_extra or {}).get("split") or {}
    return {
        "task_id": task_id, "kind": manifest.kind, "counts": split.get("counts", {}), "classes": None, "files": files,
        "notes": split.get("notes", {}), "leaks": [], "card": public.uri_for(catalog.card_key(release, task_id)),
        "action": f"carried over from {source} (unchanged since {manifest.release})",
    }


@task(name="carry-task", task_run_name="carry-{task_id}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=transient)
def carry_over_task_files(run: RunContext, task_id: str, source: str, release: str) -> TaskSummary:
    """Prefect wrapper: one task run per carried-over task (copies run in threads inside it)."""
    summary = carry_task(run, task_id, source, release)
    get_run_logger().info("%s: %s", task_id, summary["action"])
    return summary


@task(name="publish-task", task_run_name="publish-{task_id}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=transient)
def build_and_publish_task(run: RunContext, task_id: str, release: str) -> TaskSummary:
    """Prefect wrapper: one task run per challenge task (uploads run in threads inside it)."""
    summary = publish_task(run, task_id, release)
    get_run_logger().info("%s: %s", task_id, summary["counts"])
    return summary


@dataclass(frozen=True)
class TaskPlan:
    """What a release does with one staged task: build its files, or carry them over from `source`."""

    task_id: str
    kind: str | None  # None for tasks staged before kinds were recorded
    source: str | None = None  # the release whose files are carried over; None: build them


def plan_release(staged: dict[str, StagedPointer], current: dict[str, Manifest], rebuild: set[str],
                 config: ChallengeConfig, current_release: str | None,
                 corrected: dict[str, str] | None = None) -> list[TaskPlan]:
    """Every staged task not withdrawn (in challenge.yaml) is in the release: carried over from the current
    release when the inputs of its files there equal today's (and it is not in `rebuild`), else built.
    `corrected`: task id → the staged fingerprint its answer-key correction wrote (the corrected key matches
    that staged data). A step: no storage inside."""
    plans = []
    for task_id, pointer in sorted(staged.items()):
        if task_id in config.withdrawn:
            continue
        manifest = current.get(task_id)
        inputs = dict(manifest.build_inputs or {}) if manifest is not None else None
        if inputs is not None and task_id in (corrected or {}):
            inputs["staged_fingerprint"] = (corrected or {})[task_id]
        same = (manifest is not None and task_id not in rebuild
                and inputs == build_inputs(pointer.fingerprint, config))
        plans.append(TaskPlan(task_id, pointer.kind, current_release if same else None))
    return plans


def prepare_release(run: RunContext, release: str, task_ids: list[str] | None) -> list[TaskPlan]:
    """Check the release name and the tasks; clear what an interrupted run of this release left; plan it.

    Every staged task is in the release; `task_ids` are rebuilt even when nothing they depend on changed.
    """
    config, public, private = run.config, run.public, run.private
    check_release_name(release)
    if release_exists(public, release):
        raise PublishError(
            f"release '{release}' already exists at {public.uri_for(catalog.release_prefix(release))}; "
            "releases are immutable: choose another name"
        )
    staged = list_staged(private)
    selected = sorted(set(task_ids or []))
    withdrawn = sorted(set(selected) & set(config.withdrawn))
    if withdrawn:
        raise PublishError(f"cannot rebuild {', '.join(withdrawn)}: withdrawn in challenge.yaml "
                           f"({config.withdrawn[withdrawn[0]]}); remove it from `withdrawn` to publish it again")
    missing = [t for t in selected if t not in staged]
    if missing:
        raise PublishError(
            f"cannot publish {', '.join(missing)}: not staged (never passed the quality gate). "
            f"Run `challenge collect` and read the reports under {private.uri_for(catalog.REPORTS)}"
        )
    if not staged:
        raise PublishError(f"nothing to publish: no staged task under {private.uri_for(catalog.STAGED)}; run `challenge collect` first")
    prefix = catalog.release_prefix(release)
    cleared = clear_incomplete(public, prefix) + clear_incomplete(private, prefix)
    if cleared:
        log.warning("release %s was left incomplete by an earlier run: removed %d object(s), restarting", release, cleared)
    latest = read_latest(public)
    current = {t: catalog.read_manifest(public, latest.release, t) for t in latest.tasks if t in staged} if latest else {}
    corrected = {}
    for task_id in current:
        versions = read_answer_versions(private, latest.release, task_id) if latest else None
        if versions and versions.versions[-1].version > 1 and versions.versions[-1].staged_fingerprint:
            corrected[task_id] = versions.versions[-1].staged_fingerprint
    plans = plan_release(staged, current, set(selected), config, latest.release if latest else None, corrected)
    if not plans:
        raise PublishError(f"nothing to publish: every staged task is withdrawn in challenge.yaml ({', '.join(config.withdrawn)})")
    return plans



