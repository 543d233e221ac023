"""The local Prefect server the CLI starts when PREFECT_API_URL is unset: started once, reused, stopped;
a stale PID file, a PID now used by another program, a port another program holds, two commands at once
and Ctrl-C during the start; the temporary server's 180 s timeout; where the error line says the traceback is.

Each test has its own PREFECT_HOME and stops what it started (conftest checks that nothing is left)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _free_port, make_config, prefect_servers_under

from challenge.app import local_server
from challenge.core.config import write_config

CLI = Path(sys.executable).parent / "challenge"
TIMEOUT = 180


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no PREFECT_ settings but PREFECT_HOME, the local server not turned off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "CHALLENGE_NO_SERVER"}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING", **extra}


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=cli_env(home, **extra), capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect database created and migrated once for the module: each home below starts from a copy, so its
    server skips the 5 CPU-s of migrations (the first start on a new home, which creates the database, is
    tests/test_fresh_machine.py's)."""
    folder = tmp_path_factory.mktemp("migrated-prefect-home")
    made = subprocess.run([str(CLI.parent / "prefect"), "server", "database", "upgrade", "-y"], env=cli_env(folder),
                          capture_output=True, text=True, timeout=600, check=False)
    assert made.returncode == 0 and (folder / "prefect.db").is_file(), made.stdout + made.stderr
    return folder / "prefect.db"


def seeded_home(folder: Path, database: Path) -> Path:
    """`folder` as a PREFECT_HOME holding a copy of the migrated database."""
    folder.mkdir(parents=True)
    shutil.copyfile(database, folder / "prefect.db")
    return folder


@pytest.fixture
def home(tmp_path: Path, migrated_database: Path) -> Iterator[Path]:
    """A new PREFECT_HOME (with a migrated database); whatever server it has at the end is stopped, and none may
    be left."""
    folder = seeded_home(tmp_path / "prefect-home", migrated_database)
    yield folder
    local_server.stop(folder)
    assert prefect_servers_under(tmp_path) == []


def state(home: Path) -> dict:
    return json.loads((home / local_server.STATE_FILE).read_text())


def alive(pid: int) -> bool:
    return local_server.process_identity(pid) is not None


def test_started_once_reused_then_stopped(home: Path) -> None:
    started = cli(home, "server", "start")
    assert started.returncode == 0, started.stderr
    server = state(home)
    ui = f"http://127.0.0.1:{server['port']}"
    assert f"starting a local Prefect server for PREFECT_HOME={home}" in started.stderr
    assert f"UI at {ui}" in started.stderr and local_server.answers(server["port"], home)
    status = cli(home, "server", "status")
    assert f"local Prefect server: running, PID {server['pid']}, UI at {ui}" in status.stdout
    again = cli(home, "server", "start")
    assert "starting" not in again.stderr and f"already running: UI at {ui}" in again.stdout
    assert state(home)["pid"] == server["pid"] and prefect_servers_under(home) == [server["pid"]]
    stopped = cli(home, "server", "stop")
    assert f"stopped the local Prefect server (PID {server['pid']}" in stopped.stdout
    assert not alive(server["pid"]) and local_server.port_free(server["port"])
    assert "not running" in cli(home, "server", "status").stdout
    assert "no local Prefect server is running" in cli(home, "server", "stop").stdout


def test_ctrl_c_while_it_starts_leaves_it_running(home: Path) -> None:
    """The server has its own session: Ctrl-C (SIGINT to the command's process group) does not reach it."""
    command = subprocess.Popen([str(CLI), "server", "start"], env=cli_env(home), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (home / local_server.STATE_FILE).exists():
        assert command.poll() is None and time.monotonic() < deadline, command.communicate()
        time.sleep(0.1)
    os.killpg(command.pid, signal.SIGINT)
    _, err = command.communicate(timeout=60)
    assert command.returncode == 130 and "interrupted" in err
    pid = state(home)["pid"]
    assert alive(pid)
    after = cli(home, "server", "start")  # waits for the same server instead of starting another one
    assert after.returncode == 0 and "starting" not in after.stderr, after.stderr
    assert state(home)["pid"] == pid and local_server.answers(state(home)["port"], home)


def test_two_commands_at_once_start_one_server(home: Path) -> None:
    commands = [subprocess.Popen([str(CLI), "server", "start"], env=cli_env(home), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [c.communicate(timeout=600) for c in commands]
    assert [c.returncode for c in commands] == [0, 0], outputs
    assert sum("starting a local Prefect server" in err for _, err in outputs) == 1, outputs
    assert prefect_servers_under(home) == [state(home)["pid"]]


def test_a_stale_pid_file_is_replaced(home: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    local_server.write_state(home, gone.pid, _free_port(), f"1 {sys.executable} -m prefect server start")
    said: list[str] = []
    server = local_server.ensure(home, TIMEOUT, said.append)
    assert f"the previous one (PID {gone.pid}) is no longer running" in said[0]
    assert server.pid != gone.pid and local_server.answers(server.port, home) and state(home)["pid"] == server.pid


def test_a_pid_now_used_by_another_program_is_left_alone(home: Path) -> None:
    other = subprocess.Popen(["sleep", "300"])
    try:
        local_server.write_state(home, other.pid, _free_port(), "1")  # another start time
        assert local_server.status(home) is None  # not our server, whatever the file says
        server = local_server.ensure(home, TIMEOUT, lambda line: None)
        assert server.pid != other.pid and local_server.answers(server.port, home)
        local_server.stop(home)
        assert other.poll() is None  # neither ensure nor stop signalled it
    finally:
        other.kill()
        other.wait()


def test_a_port_another_program_holds_is_left_to_it(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (home / local_server.PORT_FILE).write_text(str(port))  # the port the last server of this home had
        said: list[str] = []
        server = local_server.ensure(home, TIMEOUT, said.append)
        assert f"port {port} is in use by another program" in said[0]
        assert server.port != port and local_server.answers(server.port, home)
        taken.settimeout(5)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            taken.accept()[0].close()  # still the other program's


def test_a_server_that_cannot_start_names_its_log(home: Path) -> None:
    broken = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": "nonsense://"}
    result = cli(home, "server", "start", **broken)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "exited while starting" in errors[0] and str(home / local_server.LOG_FILE) in errors[0]
    assert not (home / local_server.STATE_FILE).exists()


@pytest.mark.parametrize("setting, expected", [(None, "180 s"), ("45", "45 s")])
def test_the_temporary_servers_timeout_reaches_prefect(tmp_path: Path, setting: str | None, expected: str) -> None:
    """Read through Prefect's settings inside a CLI run: the CLI's default, or the user's own value."""
    extra = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": setting} if setting else {}
    status = cli(tmp_path / "prefect-home", "server", "status", **extra)
    assert status.returncode == 0, status.stderr
    assert f"temporary API server (--no-server): start-up timeout {expected}" in status.stdout


def test_importing_the_cli_does_not_import_prefect() -> None:
    """Prefect reads its settings at import: the CLI's defaults must be in place first."""
    code = "import sys, challenge.app.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_an_error_before_any_flow_run_says_so(tmp_path: Path) -> None:
    path = write_config(make_config("local", tmp_path, None), tmp_path / "challenge.yaml")
    unreachable = f"http://127.0.0.1:{_free_port()}/api"
    result = cli(tmp_path / "prefect-home", "--config", str(path), "score", PREFECT_API_URL=unreachable)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "before Prefect created a flow run, so no flow run's log has it" in errors[0], errors
    assert "Traceback" not in result.stderr


def test_an_error_in_a_flow_run_names_the_run(prefect_harness: None) -> None:
    from prefect import flow

    from challenge.app.terminal import NO_RUN, error_line

    @flow(name="breaks", flow_run_name="breaks-once")
    def breaks() -> None:
        raise ValueError("bad thing")

    with pytest.raises(ValueError) as raised:
        breaks()
    line = error_line(raised.value)
    assert line.startswith("error: ValueError: bad thing (run again with --debug")
    assert "the log of flow run 'breaks-once' in Prefect has it too" in line and "/runs/flow-run/" in line
    assert NO_RUN in error_line(ValueError("outside"))


def test_another_homes_server_on_the_port_is_not_taken_for_its_own(home: Path, tmp_path: Path,
                                                                  migrated_database: Path) -> None:
    """Two PREFECT_HOMEs on one machine (two checkouts, two users, a test beside a demo): a server started on
    the port another home's server holds cannot bind and exits. Its start must not count the other one's
    answer as its own (that one may be stopped a moment later: 'Connection refused' in the middle of a demo);
    `ensure` then starts it on another port."""
    other_home = seeded_home(tmp_path / "other-home", migrated_database)
    other = local_server.ensure(other_home, TIMEOUT, lambda _: None, first_start=True)
    try:
        clash = local_server.start(home, other.port)  # the port another home's server answers on
        with pytest.raises(local_server._PortTaken):
            local_server.wait_until_up(clash, TIMEOUT)
        assert not local_server.answers(other.port, home) and local_server.answers(other.port, other_home)
        own = local_server.ensure(home, TIMEOUT, lambda _: None, first_start=True)
        assert own.port != other.port and local_server.answers(own.port, home)
    finally:
        local_server.stop(other_home)


def test_a_process_is_the_same_process_while_it_replaces_its_program() -> None:
    """Its identity is taken the moment it is spawned, when the kernel may not yet show its command line (and
    a server may re-exec): the same process must keep its identity, or a starting server is taken for gone
    (its log still empty) and left running (seen on a loaded machine)."""
    program = "import os, sys, time; time.sleep(0.3); os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(5)'])"
    process = subprocess.Popen([sys.executable, "-c", program])
    try:
        before = local_server.process_identity(process.pid)
        time.sleep(1.5)
        assert before is not None and local_server.process_identity(process.pid) == before
    finally:
        process.kill()
        process.wait()
    assert local_server.process_identity(process.pid) is None


BIND_FAILED_THEN_SHUTDOWN = """\
03:02:58.643 | ERROR   | uvicorn.error - [Errno 98] error while attempting to bind on address ('127.0.0.1', 4200): address already in use
03:02:58.653 | ERROR   | uvicorn.error - Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 661, in lifespan
  File "/venv/lib/python3.11/site-packages/prefect/server/events/services/triggers.py", line 58, in stop
AssertionError: Reactive triggers not started
03:02:58.654 | ERROR   | uvicorn.error - Application shutdown failed. Exiting.
Server stopped!
"""


def test_a_port_taken_is_known_when_the_shutdown_fails_after_the_bind(home: Path) -> None:
    """Seen with four test workers on 2 cores: the port was taken between the check and the bind, and Prefect's
    shutdown then failed too, so the bind error is not among the log's last lines. It is still a taken port
    (ensure tries another one), not a server that cannot start."""
    log = home / local_server.LOG_FILE
    exited = subprocess.Popen([sys.executable, "-c", f"open({str(log)!r}, 'w').write({BIND_FAILED_THEN_SHUTDOWN!r})"])
    exited.wait(timeout=60)
    with pytest.raises(local_server._PortTaken):
        local_server.wait_until_up(local_server.Server(exited.pid, _free_port(), log), TIMEOUT)


EXIT_CHATTER = """
import atexit, logging, sys
from challenge.app import cli
from challenge.core.errors import ChallengeError

def fails(args):
    # what Prefect's events worker does when it still drains at interpreter exit (seen on a loaded machine)
    atexit.register(lambda: logging.getLogger("EventsWorker").warning("Still processing items: 1 items remaining..."))
    raise ChallengeError("release 'demo-1' already exists")

parser = cli.build_parser
def build():
    built = parser()
    built._subparsers._group_actions[0].choices["publish"].set_defaults(func=fails)
    return built
cli.build_parser = build
sys.exit(cli.main(["--no-server", "publish", "--release", "demo-1", "--debug"]))
"""


def test_the_error_line_stays_the_last_line_when_prefect_drains_at_exit(home: Path) -> None:
    """`challenge ... --debug` on a loaded machine: Prefect's events worker said it was still processing after
    the error line, so the error was no longer the last line of the command."""
    result = subprocess.run([sys.executable, "-c", EXIT_CHATTER], env=cli_env(home), capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == "error: release 'demo-1' already exists", result.stderr
