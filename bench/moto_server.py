"""moto's standalone S3 server for the benchmarks, in its own process on a free loopback port
(tests/conftest.py starts it the same way for the tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto(log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The server and its URL; its output goes to `log_path` (else nowhere)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env={**os.environ, **CREDENTIALS}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto server did not start; see {log_path or 'its output'}") from None
            time.sleep(0.1)
