"""Make Prefect work on a machine where it has never run, before any flow starts.

Without `PREFECT_API_URL` the flows run against Prefect's temporary API server,
which the first run on a new `PREFECT_HOME` must also create a database for
(imports, SQLite file, every Alembic migration). That first start takes close
to Prefect's default 20 s start-up timeout, so a cold or busy machine crossed
it. Two fixes, both only where the user has not chosen otherwise:

- the database is created and migrated here, once, in this process, with a
  line saying so, so that the server's own start no longer includes it;
- the start-up timeout defaults to `STARTUP_TIMEOUT_SECONDS` instead of 20.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO

TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_SECONDS = 180
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


def prepare_local_api(out: TextIO | None = None) -> None:
    """Create and migrate the temporary API server's database if this is the first run on this home."""
    database = database_to_create()
    if database is None:
        return
    out = out or sys.stderr
    print(f"first run with PREFECT_HOME={database.parent}: creating Prefect's local database "
          "(once, about 10 s)", file=out, flush=True)
    started = time.monotonic()
    database.parent.mkdir(parents=True, exist_ok=True)
    from prefect.server.database import provide_database_interface
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(provide_database_interface().create_db())
    print(f"Prefect's local database is ready ({time.monotonic() - started:.0f} s)", file=out, flush=True)
