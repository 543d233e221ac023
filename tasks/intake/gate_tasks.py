"""Intake's Prefect tasks: list the drops once; gate each drop (tasks/intake/gate.py, in a process of its own
within its time budget: tasks/intake/gate_process.py) and show its report as an artifact. The flow is
flows/collect_datasets.py."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.core.run_context import RunContext
from challenge.tasks.intake.drops import Claimant, Drop, DropOutcome, contributor_folder, discover_drops, report_folder
from challenge.tasks.intake.gate_process import gate_drop_within_budget
from challenge.tasks.intake.gate_reports import render_markdown


@task(name="discover-drops", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def list_drops(run: RunContext, only: list[str] | None = None) -> list[Drop]:
    """List intake once and group it into drops."""
    drops, stray = discover_drops(run.intake, set(only or []) or None)
    logger = get_run_logger()
    for key in stray:
        logger.warning("ignoring %s: drops live in <contributor>/<task_id>/ folders", key)
    logger.info("found %d drop(s) under %s", len(drops), run.config.storage.intake)
    return drops


@task(name="gate-drop", task_run_name="gate-{drop.contributor}-{drop.folder}", cache_policy=NO_CACHE,
      retries=2, retry_delay_seconds=[2, 10])
def gate_and_report_drop(drop: Drop, run: RunContext, run_time: str, clash: list[Claimant] | None = None,
                   force: bool = False) -> DropOutcome:
    """Gate one drop; publish its report as a markdown artifact (`gate-<task>` for the task's owner, else
    `gate-<task>-from-<contributor>`: another contributor's drop never replaces the owner's report)."""
    logger = get_run_logger()
    outcome, report = gate_drop_within_budget(drop, run, run_time, clash, force)
    if report is None:
        logger.info("%s unchanged since its last gate (%s); skipped", drop.name, outcome.verdict)
        return outcome
    key = f"gate-{report_folder(drop.folder)}"
    if outcome.owner not in (None, drop.contributor):
        key += "-from-" + re.sub(r"[^a-z0-9]+", "-", contributor_folder(drop.contributor).lower()).strip("-")
    create_markdown_artifact(
        key=key,
        markdown=render_markdown(report, outcome.report),
        description=f"Quality gate of {drop.name}: {outcome.verdict}",
    )
    log = logger.info if outcome.verdict == "pass" else logger.warning
    log("%s: %s (%d checks); report %s", drop.name, outcome.verdict, len(report.checks), outcome.report)
    for line in outcome.failures:
        logger.warning("%s: %s", drop.name, line)
    return outcome
