"""Final states that tell the truth: a run that did its work but left failures ends Failed.

Such a flow returns a Failed state whose data is the RunFailed error (so calling the flow raises it,
with the run's summary). Prefect's engine entry point (`python -m prefect.engine`, which runs every
deployment's flow runs for `challenge serve` and for workers) then asks the engine for the run's result;
for a Failed state that re-raises the state's exception, and the entry point logs whatever comes out of
the run as "Engine execution exited with unexpected exception" with its traceback, in the run's own log.
Nothing unexpected happened: the state, its name and its message already say what the run left failed.
So the run's logger drops exactly that record when its exception is a RunFailed; any other exception
keeps its traceback.
"""

from __future__ import annotations

import logging

from prefect.states import Failed, State

from challenge.core.errors import RunFailed

MAX_NAMED = 20  # failures named in a state message; the rest are counted
FLOW_RUN_LOGGER = "prefect.flow_runs"  # the logger of Prefect's flow-run log (sent to the API, shown in the UI)


class ExpectedFailure(logging.Filter):
    """Drop a log record whose exception is a RunFailed: the re-raise of a Failed state the flow returned."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, RunFailed)


def quiet_expected_failures() -> None:
    """Put ExpectedFailure on the flow-run logger, once per process."""
    logger = logging.getLogger(FLOW_RUN_LOGGER)
    if not any(isinstance(f, ExpectedFailure) for f in logger.filters):
        logger.addFilter(ExpectedFailure())


def failed_run(error: RunFailed) -> State:
    """A Failed state named after the error (shown red in the UI, seen by automations); calling the
    flow raises `error`, whose `result` holds the run's summary. The run's log gets no traceback for it."""
    quiet_expected_failures()
    return Failed(name=error.state_name, message=str(error), data=error)


def listing(items: list[str]) -> str:
    """`a, b, c` or `a, b, ... and 7 more`, for state messages."""
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")
