"""One local Prefect server per PREFECT_HOME (`prefect server start` on 127.0.0.1), started in the
background by the first command that needs it and reused by every later one.

Its files live in PREFECT_HOME: `challenge-server.json` (PID, port, and what tells that process apart
from a later one given the same PID), `challenge-server.log` (its output), `challenge-server.port` (the
last port, reused when free so the UI address stays the same) and `challenge-server.lock` (held while a
command checks, starts or stops it, so two commands at once start one server). It runs in its own
session: the command that started it can exit or be interrupted with Ctrl-C, the server stays up until
`challenge server stop`. Only the standard library here: the CLI decides on the API before Prefect is
imported.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from challenge.core.errors import ChallengeError

HOST = "127.0.0.1"
DEFAULT_PORT = 4200  # Prefect's own default: the UI address people know, when it is free
STATE_FILE, LOG_FILE, PORT_FILE, LOCK_FILE = ("challenge-server.json", "challenge-server.log", "challenge-server.port",
                                             "challenge-server.lock")
HAS_PROC = Path("/proc/self/stat").exists()
START_ATTEMPTS = 3  # a port taken between the check and the server's bind: try another one


class LocalServerError(ChallengeError):
    """The local Prefect server could not be started or stopped; the message names its log."""


class _PortTaken(Exception):
    """The server exited because its port was taken after it was chosen."""


@dataclass(frozen=True)
class Server:
    """A running local server: its process, port and log."""

    pid: int
    port: int
    log: Path

    @property
    def home(self) -> Path:
        """Its PREFECT_HOME (where its log is)."""
        return self.log.parent

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


def process_identity(pid: int) -> str | None:
    """The start time of a live process: a later process given the same PID differs. None when there is no
    such process or it has exited (a zombie). Not its command line: a process just spawned may not show it
    yet (the kernel sets it late in exec), and the same process would then seem to be another."""
    if HAS_PROC:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return None if fields[0] == "Z" else fields[19]
    found = subprocess.run(["ps", "-o", "stat=", "-o", "lstart=", "-p", str(pid)], check=False,
                           capture_output=True, text=True)  # no /proc (macOS)
    line = found.stdout.strip()
    return None if found.returncode or not line or line.startswith("Z") else line.split(None, 1)[1]


def answers(port: int, home: Path | None = None, timeout: float = 2) -> bool:
    """Whether a Prefect API on `port` says it is healthy and, given `home`, is the server of that
    PREFECT_HOME (its settings say so): another home's server on the port is not this one's."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=timeout) as response:
            if response.status != 200:
                return False
        if home is None:
            return True
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/admin/settings", timeout=timeout) as response:
            served = json.loads(response.read()).get("home")
        return isinstance(served, str) and Path(served).resolve() == Path(home).resolve()
    except (OSError, ValueError, AttributeError):
        return False


def port_free(port: int) -> bool:
    """Whether a server could listen on HOST:`port` now (the check `prefect server start` makes)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            return True
        except OSError:
            return False


def any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def locked(home: Path, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold PREFECT_HOME's server lock; `waiting` is called once when another command holds it."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_state(home: Path) -> dict | None:
    """The state file's content, None when there is none or it cannot be read (then it is stale)."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
        return state if isinstance(state, dict) and {"pid", "port", "identity"} <= state.keys() else None
    except (OSError, ValueError):
        return None


def write_state(home: Path, pid: int, port: int, identity: str) -> None:
    temporary = home / f"{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps({"pid": pid, "port": port, "identity": identity}))
    os.replace(temporary, home / STATE_FILE)


def recorded(home: Path) -> tuple[Server | None, str | None]:
    """The server the state file names when that very process still runs; else None and why the file is stale."""
    state = read_state(home)
    if state is None:
        return None, None if not (home / STATE_FILE).exists() else "its state file could not be read"
    pid, port = int(state["pid"]), int(state["port"])
    if process_identity(pid) != state["identity"]:
        return None, f"the previous one (PID {pid}) is no longer running"
    return Server(pid, port, home / LOG_FILE), None


def status(home: Path) -> Server | None:
    """The running local server of `home`, or None."""
    return recorded(home)[0]


def ensure(home: Path, timeout: float, say: Callable[[str], None], first_start: bool = False) -> Server:
    """The running local server of `home`, started (and waited for, up to `timeout` s) when there is none.

    Says once, when it starts one, where its UI is; a reused server says nothing. A state file naming a
    process that is gone (or a PID now used by another program) is stale: a new server starts, and
    nothing else is touched; a port another program holds is left to it and a free one is used.
    """
    with locked(home, lambda: say("waiting for another challenge command that is starting the local Prefect server")):
        server, stale = recorded(home)
        if server is not None:
            if not answers(server.port, home):  # still starting (its starter was interrupted, or is slow): wait
                wait_until_up(server, timeout)
            return server
        (home / STATE_FILE).unlink(missing_ok=True)
        previous = read_previous_port(home)
        for attempt in range(START_ATTEMPTS):
            port, note = choose_port(previous if attempt == 0 else None)
            why = "; ".join(filter(None, [stale if attempt == 0 else None, note]))
            server = start(home, port)
            say(f"starting a local Prefect server for PREFECT_HOME={home}" + (f" ({why})" if why else "")
                + (": its first start creates its database, which takes a minute on a busy machine" if first_start else "")
                + f"; waiting up to {timeout:.0f} s ...")
            started = time.monotonic()
            try:
                wait_until_up(server, timeout)
            except _PortTaken:
                continue
            say(f"local Prefect server ready in {time.monotonic() - started:.0f} s: UI at {server.ui_url} "
                f"(it stays up for the next commands; `challenge server stop` stops it; log: {server.log})")
            return server
        raise LocalServerError(f"the local Prefect server found no free port in {START_ATTEMPTS} attempts; "
                               f"see {home / LOG_FILE}")


def read_previous_port(home: Path) -> int | None:
    """The port of the last server of this home, for a stable UI address."""
    try:
        return int((home / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def choose_port(previous: int | None) -> tuple[int, str | None]:
    """The last server's port, else Prefect's default, when free; else one the system gives (and a note why)."""
    wanted = previous or DEFAULT_PORT
    if port_free(wanted):
        return wanted, None
    return any_free_port(), f"port {wanted} is in use by another program"


def start(home: Path, port: int) -> Server:
    """`prefect server start` on HOST:`port` in its own session, output to the log; recorded before it is up."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_UI_API_URL=f"http://{HOST}:{port}/api")
    log = home / LOG_FILE
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    process.returncode = 0  # it outlives this process: no "still running" warning when the object goes
    identity = process_identity(process.pid) or ""
    write_state(home, process.pid, port, identity)
    (home / PORT_FILE).write_text(str(port))
    return Server(process.pid, port, log)


def wait_until_up(server: Server, timeout: float) -> None:
    """Return when the server answers; when it exits or `timeout` s pass, stop it, forget it and raise.
    (Ctrl-C while waiting leaves it starting: the next command waits for it.)"""
    deadline = time.monotonic() + timeout
    identity = process_identity(server.pid)
    while not answers(server.port, server.home):
        gone = identity is None or process_identity(server.pid) != identity
        if gone or time.monotonic() > deadline:
            reap(server.pid) if gone else terminate(server.pid)
            (server.log.parent / STATE_FILE).unlink(missing_ok=True)
            tail = last_lines(server.log)
            if gone and port_was_taken(server.log):
                raise _PortTaken()
            raise LocalServerError(
                f"the local Prefect server exited while starting; its log, {server.log}, ends: {tail or '(empty)'}"
                if gone else f"the local Prefect server did not answer within {timeout:.0f} s and was stopped; see "
                f"its log, {server.log}; on a busy machine run again, or set PREFECT_API_URL to a running server")
        time.sleep(0.25)


def stop(home: Path) -> Server | None:
    """Stop the local server of `home` (its whole session); the one stopped, or None when none was running."""
    with locked(home):
        server, _ = recorded(home)
        if server is not None:
            terminate(server.pid)
        (home / STATE_FILE).unlink(missing_ok=True)
        return server


def terminate(pid: int, grace: float = 30) -> None:
    """SIGTERM to the server's process group (it leads its own session), SIGKILL after `grace` s."""
    identity = process_identity(pid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(pid)
            if identity is None or process_identity(pid) != identity:
                return
            time.sleep(0.1)


def reap(pid: int) -> None:
    """Collect the exit status when this process started the server (else it lingers as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_was_taken(log: Path) -> bool:
    """Whether a server that exited says its port was in use: anywhere in its log, as what follows the bind
    error (a shutdown that fails in turn, its traceback) may push it out of the last lines."""
    try:
        return "already in use" in log.read_text(errors="replace")  # uvicorn's bind error, or Prefect's own check
    except OSError:
        return False


def last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-count:])
