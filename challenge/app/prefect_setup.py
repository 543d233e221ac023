"""Give the CLI's flows a Prefect API before any flow starts, also where Prefect has never run.

- `PREFECT_API_URL` set (environment, profile, prefect.toml): that server; nothing else is done.
- Otherwise the local server (`challenge.app.local_server`): started in the background by the first
  command, reused by the later ones (about a third of a command's fixed cost was starting and stopping
  Prefect's temporary server). Its address goes into `os.environ` and Prefect's settings are read again,
  so this process and its subprocesses (served flow runs) use it. It migrates its own database.
- `--no-server` or `CHALLENGE_NO_SERVER=1` (what the tests set): Prefect's temporary server, started and
  stopped with the command. Its database is created here first, with a line saying so, and its start-up
  timeout is `STARTUP_TIMEOUT_SECONDS` instead of Prefect's 20 s (`set_defaults`, which must run before
  `prefect` is imported: Prefect reads its settings at import).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_SECONDS = 180  # the temporary server's, and how long a command waits for the local one
NO_SERVER_ENV = "CHALLENGE_NO_SERVER"
QUIET_DEFAULTS = {  # no usage reports from GX or Prefect
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def set_defaults() -> None:
    """Environment defaults for everything the CLI starts; a value the user set is kept.

    Must run before `prefect` is imported: Prefect reads its settings once, at import.
    """
    for name, value in {**QUIET_DEFAULTS, TIMEOUT_VARIABLE: str(STARTUP_TIMEOUT_SECONDS)}.items():
        os.environ.setdefault(name, value)


def local_database(connection_url: str | None, home: Path) -> Path | None:
    """The SQLite file the temporary server would use, or None for another database."""
    if connection_url is None:
        return home / "prefect.db"
    for scheme in ("sqlite+aiosqlite:///", "sqlite:///"):
        if connection_url.startswith(scheme):
            path = connection_url[len(scheme):]
            return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)
    return None


def database_to_create() -> Path | None:
    """The temporary server's SQLite file when it does not exist yet (and no API server is configured)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:
        return None
    url = settings.server.database.connection_url
    database = local_database(url.get_secret_value() if url is not None else None, Path(settings.home))
    return database if database is not None and not database.exists() else None


def temporary_requested(flag: bool = False) -> bool:
    """`--no-server`, or $CHALLENGE_NO_SERVER set to anything but 0/false: use Prefect's temporary server."""
    return flag or os.environ.get(NO_SERVER_ENV, "").strip().lower() not in ("", "0", "false", "no")


def configured_api_url() -> str | None:
    """The API the user chose (PREFECT_API_URL in the environment, a profile or prefect.toml), else None."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def prepare_local_api(out: TextIO | None = None, temporary: bool = False) -> str | None:
    """Make sure the flows have an API: the user's; else the local server (started if need be) unless
    `temporary`; else the temporary server, whose database is created here on a first run.
    Returns the API URL the flows use, None for the temporary server."""
    out = out or sys.stderr
    chosen = configured_api_url()
    if chosen:
        return chosen
    if not temporary:
        return use_local_server(out)
    database = database_to_create()
    if database is None:
        return None
    print(f"first run with PREFECT_HOME={database.parent}: creating Prefect's local database "
          "(once, about 10 s)", file=out, flush=True)
    started = time.monotonic()
    database.parent.mkdir(parents=True, exist_ok=True)
    from prefect.server.database import provide_database_interface
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(provide_database_interface().create_db())
    print(f"Prefect's local database is ready ({time.monotonic() - started:.0f} s)", file=out, flush=True)
    return None


def use_local_server(out: TextIO) -> str:
    """The local server of this PREFECT_HOME (started when none runs) made the API of this process and of
    its subprocesses; returns its API URL."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    from challenge.app import local_server

    first = database_to_create() is not None
    server = local_server.ensure(Path(get_current_settings().home), STARTUP_TIMEOUT_SECONDS,
                                 lambda line: print(line, file=out, flush=True), first)
    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()  # Prefect read its settings at import, before this address existed
    if get_current_settings().api.url != server.api_url:
        raise RuntimeError(f"Prefect's settings did not take PREFECT_API_URL={server.api_url}")
    return server.api_url


def runs_ui_url() -> str | None:
    """Where Prefect's UI lists the flow runs of the API in use; None for the temporary server (no UI)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return f"{settings.ui_url.rstrip('/')}/runs" if settings.api.url and settings.ui_url else None
