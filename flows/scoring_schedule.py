"""When the scoring flow runs next, asked of Prefect by the run itself (for `<public>/challenge.json`).

A run of the `score-submissions` deployment knows its deployment: its interval schedule says how often,
and the earliest Scheduled run of that deployment when. A run started by hand (the CLI) has neither.
"""

from __future__ import annotations

from datetime import datetime, timezone

from challenge.core.catalog import ScoringSchedule
from challenge.core.logs import step_logger

log = step_logger(__name__)


def scoring_schedule(last_run_at: datetime) -> ScoringSchedule:
    """This run's time, and the deployment's interval and next scheduled run (None when not deployed, or
    when Prefect cannot say: participants are then told the time is not announced)."""
    last = last_run_at.astimezone(timezone.utc).isoformat()
    from prefect.runtime import deployment

    deployment_id = deployment.id
    if not deployment_id:
        return ScoringSchedule(last_run_at=last)
    try:
        return ScoringSchedule(last_run_at=last, **_next_run(str(deployment_id)))
    except Exception as exc:  # noqa: BLE001 (an announcement; never a reason to fail a scoring run)
        log.warning("could not read the scoring schedule from Prefect (%s: %s)", type(exc).__name__, exc)
        return ScoringSchedule(last_run_at=last)


def _next_run(deployment_id: str) -> dict[str, float | str | None]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        found = client.read_deployment(deployment_id)
        intervals = [s.schedule.interval for s in found.schedules or []
                     if getattr(s, "active", True) and getattr(s.schedule, "interval", None)]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                                          state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
    due = runs[0].expected_start_time if runs else None
    return {"every_minutes": round(min(intervals).total_seconds() / 60, 2) if intervals else None,
            "next_run_due": due.astimezone(timezone.utc).isoformat() if due else None}
