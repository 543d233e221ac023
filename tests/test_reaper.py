"""A command killed with SIGKILL leaves no process of its own behind (challenge/app/reaper.py): the temporary
Prefect API server of `--no-server` is stopped by the command's watchdog; a process in a session of its
own (the local server meant to stay up) is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from challenge.app.scaffold import init_challenge

CLI = Path(sys.executable).parent / "challenge"


def temporary_servers(home: Path) -> list[int]:
    """PIDs of Prefect temporary API servers (uvicorn running Prefect's app) whose PREFECT_HOME is `home`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in command and f"PREFECT_HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_killed_command_leaves_no_temporary_server(tmp_path: Path) -> None:
    init_challenge(tmp_path / "c", "killed", "Killed", with_examples=True)
    home = tmp_path / "prefect-home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, "PREFECT_HOME": str(home)}
    command = subprocess.Popen([str(CLI), "--no-server", "--config", str(tmp_path / "c" / "challenge.yaml"), "collect"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: temporary_servers(home), 300), "the temporary server never started"
    finally:
        command.send_signal(signal.SIGKILL)
        command.wait()
    left = temporary_servers(home)
    try:
        assert wait_for(lambda: not temporary_servers(home), 60), f"still running after the command was killed: {left}"
    finally:
        for pid in temporary_servers(home):
            os.kill(pid, signal.SIGKILL)


def test_a_process_in_its_own_session_is_left_alone(tmp_path: Path) -> None:
    """What the watchdog stops and what it keeps, on a parent it watches (a child process here)."""
    script = (
        "import subprocess, sys, time\n"
        "from challenge.app.reaper import watch_this_process\n"
        "watch_this_process(grace=1)\n"
        "own = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "kept = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
        "print(own.pid, kept.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    own, kept = map(int, parent.stdout.readline().split())
    time.sleep(2.5)  # the watchdog notes the children once a second
    parent.kill()
    parent.wait()
    try:
        assert wait_for(lambda: not Path(f"/proc/{own}").exists() or "Z" in Path(f"/proc/{own}/stat").read_text().split(")")[1][:3],
                        30), "the parent's own child outlived it"
        assert Path(f"/proc/{kept}").exists()
    finally:
        for pid in (own, kept):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
