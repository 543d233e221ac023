"""Final states that tell the truth: a run that did its work but left failures ends Failed."""

from __future__ import annotations

from prefect.states import Failed, State

from challenge.errors import RunFailed

MAX_NAMED = 20  # failures named in a state message; the rest are counted


def failed_run(error: RunFailed) -> State:
    """A Failed state named after the error (shown red in the UI, seen by automations); calling the
    flow raises `error`, whose `result` holds the run's summary."""
    return Failed(name=error.state_name, message=str(error), data=error)


def listing(items: list[str]) -> str:
    """`a, b, c` or `a, b, ... and 7 more`, for state messages."""
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")
