"""Flow: train a scikit-learn baseline per task of the latest release and submit it as team `baseline`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow, tags
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from challenge.core.config import load_config
from challenge.core.errors import BaselineError
from challenge.core.records import BaselineSummary
from challenge.core.run_context import RunContext
from challenge.core.task_runners import task_runner_from_env, warn_unseen_storage
from challenge.flows.run_names import run_name
from challenge.tasks.baselines.models import select_tasks, train_and_submit_baseline
from challenge.tasks.release.latest import current_release


def _release_label(params: dict[str, Any]) -> str | None:
    """The latest release's name, for the run name `baselines-<release>` (the time when there is none yet)."""
    try:
        return current_release(RunContext(load_config(params.get("config_path"))).public).release
    except Exception:  # noqa: BLE001 (any failure: the flow itself reports it)
        return None


@dataclass
class BaselineRun:
    """The baselines of one release: a summary per task, how many were uploaded and how many were already there."""

    release: str
    baselines: list[BaselineSummary] = field(default_factory=list)
    uploaded: int = 0
    unchanged: int = 0


@flow(name="run-baselines", flow_run_name=run_name("baselines", _release_label), task_runner=task_runner_from_env())
def run_baselines(config_path: str | None = None, tasks: list[str] | None = None) -> BaselineRun:
    """Train each task's baseline on the latest public release and upload its predictions as team `baseline`.

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
        tasks: Train only for these task ids of the latest release (default: all of them).
    """
    logger = get_run_logger()
    config = load_config(config_path)
    warn_unseen_storage(config)
    run = RunContext(config)
    latest = current_release(run.public)
    release = latest.release
    selected = select_tasks(tasks, latest.tasks)
    logger.info("baselines for release %s: %d task(s): %s", release, len(selected), ", ".join(selected))
    futures = []
    for task_id in selected:
        with tags(f"task:{task_id}", f"release:{release}", "team:baseline"):
            futures.append((task_id, train_and_submit_baseline.submit(run, task_id, release)))
    summaries, failures = [], []
    for task_id, future in futures:
        try:
            summaries.append(future.result())
        except Exception as exc:  # noqa: BLE001 (after retries; the other baselines still count)
            logger.error("%s: no baseline: %s", task_id, exc)
            failures.append(f"{task_id}: {exc}")
    if summaries:
        create_table_artifact(
            key="baselines", description=f"Baselines trained on release {release} (validation: held-out fifth of train)",
            table=[{"task": s["task_id"], "kind": s["kind"], "model": s["model"], "metric": s["metric"],
                    "validation_score": s["validation_score"], "train_rows": s["train_rows"],
                    "test_rows": s["test_rows"], "train_seconds": s["train_seconds"],
                    "submission": s["key"], "uploaded": s["uploaded"]} for s in summaries],
        )
    uploaded = sum(s["uploaded"] for s in summaries)
    logger.info("baselines for release %s: %d trained, %d uploaded, %d unchanged, %d failed",
                release, len(summaries), uploaded, len(summaries) - uploaded, len(failures))
    if failures:
        raise BaselineError(f"{len(failures)} baseline(s) failed: " + "; ".join(failures))
    return BaselineRun(release, summaries, uploaded, len(summaries) - uploaded)
