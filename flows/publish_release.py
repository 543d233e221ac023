"""Flow: publish staged datasets as an immutable, versioned release (SPEC §7)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow
from prefect.artifacts import create_link_artifact, create_table_artifact

from challenge.config import ChallengeConfig, load_config
from tasks.opaque_ids import load_or_create_key
from tasks.publish import (
    default_release_name,
    finish_release,
    get_logger,
    open_locations,
    prepare_release,
    publish_task_task,
)


def _run_name() -> str:
    return "publish-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


@flow(name="publish-release", flow_run_name=_run_name)
def publish_release(
    config: ChallengeConfig | None = None,
    config_path: str | None = None,
    release: str | None = None,
    task_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Split, de-identify, upload and verify every task; then point latest.json at the release."""
    config = config or load_config(config_path)
    release = release or default_release_name()
    selected = prepare_release(config, release, task_ids)
    public, private = open_locations(config)
    load_or_create_key(private)  # once, before the tasks run concurrently; they read it themselves
    futures = [publish_task_task.submit(config, task_id, release) for task_id in selected]
    summaries = [f.result() for f in futures]  # any failure raises here: latest.json stays as it was
    marker = finish_release(public, release, [s["task_id"] for s in summaries])
    for s in summaries:
        create_link_artifact(key=f"card-{s['task_id']}", link=s["card"], link_text=f"{s['task_id']} dataset card",
                             description=f"Release {release}")
    create_table_artifact(
        key="release", description=f"Release {release}",
        table=[{"task": s["task_id"], "kind": s["kind"], "classes": s["classes"], "files": s["files"],
                **{f"rows_{k}": v for k, v in s["counts"].items()}} for s in summaries],
    )
    get_logger().info("release %s published: %s", release, ", ".join(marker["tasks"]))
    return {**marker, "summaries": summaries, "location": public.uri_for(f"releases/{release}")}
