"""Intake's Prefect tasks: list the drops once; gate each drop (tasks/gate.py) and show its report
as an artifact. The flow is flows/collect_datasets.py."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.config import ChallengeConfig
from challenge.storage import open_location
from challenge.tasks.drops import Drop, DropOutcome, discover_drops, report_folder
from challenge.tasks.gate import gate_drop
from challenge.tasks.reports import render_markdown


@task(name="discover-drops", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def discover_drops_task(config: ChallengeConfig, only: list[str] | None = None) -> list[Drop]:
    """List intake once and group it into drops."""
    drops, stray = discover_drops(open_location(config, "intake"), set(only or []) or None)
    logger = get_run_logger()
    for key in stray:
        logger.warning("ignoring %s: drops live in <contributor>/<task_id>/ folders", key)
    logger.info("found %d drop(s) under %s", len(drops), config.storage.intake)
    return drops


@task(name="gate-drop", task_run_name="gate-{drop.contributor}-{drop.folder}", cache_policy=NO_CACHE,
      retries=2, retry_delay_seconds=[2, 10])
def gate_drop_task(drop: Drop, config: ChallengeConfig, run_time: str, clash: list[str] | None = None,
                   force: bool = False) -> DropOutcome:
    """Gate one drop; publish its report as a markdown artifact."""
    logger = get_run_logger()
    outcome, report = gate_drop(drop, config, run_time, clash, force)
    if report is None:
        logger.info("%s unchanged since its last gate (%s); skipped", drop.name, outcome.verdict)
        return outcome
    create_markdown_artifact(
        key=f"gate-{report_folder(report.task_id)}",
        markdown=render_markdown(report, outcome.report),
        description=f"Quality gate of {drop.name}: {outcome.verdict}",
    )
    log = logger.info if outcome.verdict == "pass" else logger.warning
    log("%s: %s (%d checks); report %s", drop.name, outcome.verdict, len(report.checks), outcome.report)
    for line in outcome.failures:
        logger.warning("%s: %s", drop.name, line)
    return outcome
