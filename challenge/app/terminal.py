"""What the CLI prints when a command fails: one `error: ...` line, no Prefect traceback.

The log of the flow run that failed (in Prefect's API and UI) still records the traceback, and the
line says which run that is; an error before Prefect created any flow run (an API that cannot be
reached, say) says that no run has it. `challenge --debug ...` prints it on the terminal as well.
"""

from __future__ import annotations

import logging
from typing import Any

from challenge.core.errors import ChallengeError

DEBUG_HINT = "run again with --debug for the traceback"
NO_RUN_YET = "it happened before Prefect created a flow run, so no flow run's log has it"
NO_RUN = "it happened outside any flow run, so Prefect has no log of it"
ENGINES = ("FlowRunEngine", "AsyncFlowRunEngine")  # prefect.flow_engine: the frames that run a flow


def error_line(exc: BaseException, debug: bool = False) -> str:
    """`error: <message>` for a refusal the user can act on; type, message and a hint for anything else."""
    if isinstance(exc, ChallengeError):
        return f"error: {exc}"
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError, NoCredentialsError

    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):  # refused, dropped, timed out
        return (f"error: S3 endpoint unreachable ({type(exc).__name__}: {str(exc)[:300]}); nothing already stored "
                "was lost and a release or scoring run left halfway is completed by the next run: rerun is safe once "
                "it is reachable")
    if isinstance(exc, NoCredentialsError):
        return "error: no AWS credentials found for S3 storage; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return f"error: {text}" + ("" if debug else f" ({DEBUG_HINT}; {where_logged(exc)})")


def where_logged(exc: BaseException) -> str:
    """Which flow run's log has the traceback of `exc`, or why none has it."""
    engines = list(flow_engines(exc))
    runs = [engine.flow_run for engine in engines if getattr(engine, "flow_run", None) is not None]
    if not runs:
        return NO_RUN_YET if engines else NO_RUN
    run = runs[-1]  # the innermost: a subflow's failure is logged in its own run
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    link = f": {settings.ui_url.rstrip('/')}/runs/flow-run/{run.id}" if settings.api.url and settings.ui_url else ""
    return f"the log of flow run '{run.name}' in Prefect has it too{link}"


def flow_engines(exc: BaseException) -> list[Any]:
    """Prefect's flow-run engines on the way `exc` (and the exceptions it came from) was raised, outermost first."""
    found: list[Any] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            for name in ("self", "engine"):
                value = tb.tb_frame.f_locals.get(name)
                if type(value).__name__ in ENGINES and all(value is not e for e in found):
                    found.append(value)
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return found


class _NoTraceback(logging.Filter):
    """Drop the engine's exception records (their traceback) from the console; other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info or record.exc_text)


EXIT_CHATTER = ("EventsWorker", "APILogWorker")  # Prefect's queue services, named for their class


def quiet_exit_chatter() -> None:
    """Prefect's queue services say "still processing items" while they drain at interpreter exit, after the
    command printed its last line (its error line, say): only their errors reach the terminal."""
    for name in EXIT_CHATTER:
        logging.getLogger(name).setLevel(logging.ERROR)


def hide_tracebacks_on_console() -> None:
    """Filter the console handlers Prefect set up; its API log handler is not touched."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # the handlers the filter attaches to

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                    isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())
