"""What the CLI prints when a command fails: one `error: ...` line, no Prefect traceback.

The flow run's own log (in Prefect's API and UI) still records the traceback;
`challenge --debug ...` prints it on the terminal as well.
"""

from __future__ import annotations

import logging

from challenge.errors import ChallengeError

DEBUG_HINT = "run again with --debug for the traceback; the flow run's log in Prefect has it too"


def error_line(exc: BaseException, debug: bool = False) -> str:
    """`error: <message>` for a refusal the user can act on; type, message and a hint for anything else."""
    if isinstance(exc, ChallengeError):
        return f"error: {exc}"
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError):
        return (f"error: S3 endpoint unreachable ({exc}); nothing already stored was lost and a release or "
                "scoring run left halfway is completed by the next run: rerun is safe once it is reachable")
    if isinstance(exc, NoCredentialsError):
        return "error: no AWS credentials found for S3 storage; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return f"error: {text}" + ("" if debug else f" ({DEBUG_HINT})")


class _NoTraceback(logging.Filter):
    """Drop the engine's exception records (their traceback) from the console; other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info or record.exc_text)


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
