"""Flow-run names that say what ran, e.g. `score-2026-11-24T10:05:07Z`, `publish-2026-12`, `rescore-penguins-...`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from prefect.runtime import flow_run


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_name(action: str | Callable[[dict], str],
             label: Callable[[dict], str | None] | None = None) -> Callable[[], str]:
    """`<action>-<label from the run's parameters>`, or `<action>-<UTC time>` when there is none;
    `action` may itself depend on the parameters (score or rescore)."""

    def name() -> str:
        params = flow_run.parameters or {}
        verb = action(params) if callable(action) else action
        text = label(params) if label else None
        return f"{verb}-{text}" if text else f"{verb}-{stamp()}"

    return name


def with_tasks(params: dict) -> str | None:
    """The UTC time, then the chosen task ids, if any."""
    tasks = params.get("tasks") or []
    return "-".join([stamp(), *tasks[:3]] + (["..."] if len(tasks) > 3 else [])) if tasks else None
