"""Flow: collect contributors' drops and put each through the quality gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect import flow
from prefect.logging import get_run_logger

from challenge.config import ChallengeConfig, load_config
from tasks.intake import DropOutcome, discover_drops_task, gate_drop_task, run_time_label, task_id_clashes


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


def _run_name() -> str:
    return "collect-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


@flow(name="collect-datasets", flow_run_name=_run_name, log_prints=True)
def collect_datasets(
    config: ChallengeConfig | None = None,
    config_path: str | None = None,
    task_ids: list[str] | None = None,
    force: bool = False,
) -> CollectSummary:
    """Discover drops under intake and gate each independently (one bad drop never stops the others)."""
    logger = get_run_logger()
    config = config or load_config(config_path)
    run_time = run_time_label(datetime.now(timezone.utc))
    drops = discover_drops_task(config, task_ids)
    clashes = task_id_clashes(drops)
    futures = [gate_drop_task.submit(d, config, run_time, clashes.get(d.folder), force) for d in drops]
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
    logger.info("collection summary: %s", summary.counts())
    return summary
