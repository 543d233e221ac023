"""Flow: collect contributors' drops and put each through the quality gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect import flow, tags
from prefect.logging import get_run_logger
from prefect.states import State

from challenge.core.config import load_config
from challenge.core.errors import DropsFailed
from challenge.core.run_context import RunContext
from challenge.core.task_runners import task_runner_from_env, warn_unseen_storage
from challenge.flows.run_names import run_name, with_tasks
from challenge.flows.run_states import failed_run, listing
from challenge.tasks.intake.drops import DropOutcome, run_time_label, task_id_clashes
from challenge.tasks.intake.gate_tasks import gate_and_report_drop, list_drops


@dataclass
class CollectSummary:
    """What one collection run did, drop by drop."""

    outcomes: list[DropOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[DropOutcome]:
        return [o for o in self.outcomes if o.verdict != "pass"]

    def counts(self) -> dict[str, int]:
        return {
            "drops": len(self.outcomes),
            "passed": sum(o.verdict == "pass" for o in self.outcomes),
            "failed": len(self.failed),
            "unchanged": sum(o.status == "unchanged" for o in self.outcomes),
        }

    def failure_message(self) -> str:
        """What the Failed state says: how many drops failed, and which."""
        return (f"{len(self.failed)} of {len(self.outcomes)} drop(s) failed the quality gate: "
                + listing([o.drop for o in self.failed]) + "; each report says what to fix")


@flow(name="collect-datasets", flow_run_name=run_name("collect", with_tasks), task_runner=task_runner_from_env())
def collect_datasets(config_path: str | None = None, tasks: list[str] | None = None,
                     force: bool = False) -> CollectSummary | State:
    """Discover drops under intake and gate each independently (one bad drop never stops the others: each is
    gated in a process of its own, stopped at challenge.yaml's intake.max_seconds_per_drop).

    The run ends Failed (state DropsFailed, naming the drops) when any drop fails; calling the flow
    then raises DropsFailed, whose `result` is the summary.

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
        tasks: Gate only the drops of these task ids (default: every drop).
        force: Gate drops again even when their files and rules did not change.
    """
    logger = get_run_logger()
    config = load_config(config_path)
    warn_unseen_storage(config)
    run_time = run_time_label(datetime.now(timezone.utc))
    run = RunContext(config)
    drops = list_drops(run, tasks)
    clashes = task_id_clashes(drops)
    logger.info("%d drop(s) found under %s", len(drops), config.storage.intake)
    futures = []
    for d in drops:
        with tags(f"task:{d.folder}", f"contributor:{d.contributor}"):
            futures.append(gate_and_report_drop.submit(d, run, run_time, clashes.get(d.folder), force))
    summary = CollectSummary()
    for drop, future in zip(drops, futures):
        try:
            summary.outcomes.append(future.result())
        except Exception as exc:  # an unexpected error in one drop, after retries
            logger.error("%s: could not be gated: %s", drop.name, exc)
            summary.outcomes.append(DropOutcome(
                drop=drop.name, task_id=drop.folder, verdict="fail", status="error", report="",
                failures=[f"internal error while gating (retried): {type(exc).__name__}: {exc}"],
            ))
    counts = summary.counts()
    logger.info("collection summary: %d drop(s): %d passed, %d failed, %d unchanged", counts["drops"], counts["passed"],
                counts["failed"], counts["unchanged"])
    if summary.failed:
        return failed_run(DropsFailed(summary.failure_message(), summary))
    return summary
