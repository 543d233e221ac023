"""Flow: publish staged datasets as an immutable, versioned release (SPEC §7)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow, tags
from prefect.logging import get_run_logger

from challenge.core import catalog
from challenge.core.config import load_config
from challenge.core.records import TaskSummary
from challenge.core.run_context import RunContext
from challenge.core.scoring_slot import scoring_slot
from challenge.core.task_runners import task_runner_from_env, warn_unseen_storage
from challenge.flows.run_names import run_name
from challenge.tasks.artifacts import public_page_artifact, table_artifact
from challenge.tasks.boards.publish import refresh_leaderboard
from challenge.tasks.release.challenge_info import refresh_challenge_info
from challenge.tasks.release.opaque_ids import load_or_create_key
from challenge.tasks.release.publish import (
    build_and_publish_task,
    carry_over_task_files,
    default_release_name,
    finish_release,
    prepare_release,
)
from challenge.tasks.scoring.batches import finalized_at


@dataclass
class PublishRun:
    """The release a publish run made: its name, when, its task ids, a summary per task, where it is."""

    release: str
    published_at: str | None
    task_ids: list[str]
    summaries: list[TaskSummary] = field(default_factory=list)
    location: str = ""


@flow(name="publish-release", flow_run_name=run_name("publish", lambda p: p.get("release")),
      task_runner=task_runner_from_env())
def publish_release(config_path: str | None = None, release: str | None = None,
                    tasks: list[str] | None = None) -> PublishRun:
    """Split, de-identify, upload and verify every task; then point latest.json at the release, and rebuild
    the leaderboards, once there are any, for it (a withdrawn task leaves every board file at once).

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
        release: Name of the new release, e.g. 2026-12 (default: the UTC time); releases are immutable.
        tasks: Rebuild these task ids even if unchanged (every staged task is in the release; unchanged ones
            are carried over from the current release byte for byte).
    """
    config = load_config(config_path)
    warn_unseen_storage(config)
    release = release or default_release_name()
    run = RunContext(config)
    plans = prepare_release(run, release, tasks)
    public, private = run.public, run.private
    load_or_create_key(private)  # once, before the tasks run concurrently; they read it themselves
    get_run_logger().info("publishing release %s: %d task(s): %s", release, len(plans),
                      ", ".join(p.task_id + (f" (carried over from {p.source})" if p.source else "") for p in plans))
    futures = []
    for plan in plans:
        with tags(f"task:{plan.task_id}", *([f"track:{plan.kind}"] if plan.kind else []), f"release:{release}"):
            if plan.source:
                futures.append(carry_over_task_files.submit(run, plan.task_id, plan.source, release))
            else:
                futures.append(build_and_publish_task.submit(run, plan.task_id, release))
    summaries = [f.result() for f in futures]  # any failure raises here: latest.json stays as it was
    marker = finish_release(public, release, [s["task_id"] for s in summaries], config.withdrawn)
    if public.exists(catalog.BOARD_JSON):  # the boards follow the release now: a withdrawn task's standings go
        with scoring_slot(run):
            refresh_leaderboard(run)
    refresh_challenge_info(public, config, finalized_at(private))
    for s in summaries:
        public_page_artifact(run, f"card-{s['task_id']}", catalog.card_key(release, s["task_id"]),
                             f"{s['task_id']} dataset card", f"Release {release}")
    table_artifact("release", [{"task": s["task_id"], "kind": s["kind"], "files": s["files"], "action": s["action"],
                                **{f"rows_{k}": v for k, v in s["counts"].items()},
                                "leak findings": len(s["leaks"])} for s in summaries],
                   f"Release {release}", {"task": "none"})
    get_run_logger().info("release %s published: %s", release, ", ".join(marker.tasks))
    for task_id, reason in marker.withdrawn.items():
        get_run_logger().warning("%s is withdrawn (not in release %s, not on the boards): %s", task_id, release, reason)
    return PublishRun(marker.release, marker.published_at, marker.tasks, summaries,
                      public.uri_for(catalog.release_prefix(release)))
