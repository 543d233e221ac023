"""The CLI on a machine where Prefect has never run: `challenge demo` with a brand-new PREFECT_HOME,
in a subprocess as a user types it (it starts the local Prefect server, which the later commands reuse
and the module stops at its end); then refusals print one `error:` line and no traceback, and
`--no-server` runs on Prefect's temporary server instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import prefect_servers_under

CLI = Path(sys.executable).parent / "challenge"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose PREFECT_HOME does not exist yet (no database, no profile), and a new folder;
    at the end the local server the commands started is stopped, and nothing of it may be left."""
    root = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("CHALLENGE_CONFIG", "CHALLENGE_NO_SERVER")}
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    yield env, root
    stopped = run(env, root, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert prefect_servers_under(root) == [] and not (root / "prefect-home" / "challenge-server.json").exists()


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(fresh: tuple[dict[str, str], Path]) -> subprocess.CompletedProcess[str]:
    """`challenge demo` as the first command on the new PREFECT_HOME (once per module, whichever test asks)."""
    env, root = fresh
    assert not (root / "prefect-home").exists()
    return run(env, root, "demo", str(root / "demo"))


@pytest.fixture
def demoed(fresh: tuple[dict[str, str], Path], demo: subprocess.CompletedProcess[str]) -> tuple[dict[str, str], Path]:
    """The environment and folder of a demo that ran to its end."""
    assert demo.returncode == 0, demo.stderr[-3000:]
    return fresh


def test_demo_runs_on_a_new_prefect_home(fresh: tuple[dict[str, str], Path], demo: subprocess.CompletedProcess[str]) -> None:
    env, root = fresh
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "its first start creates its database" in demo.stderr  # the first run says why it waits
    assert "[10/10] board" in demo.stdout and "leaderboard page: " in demo.stdout
    assert "Traceback" not in demo.stdout + demo.stderr
    assert (root / "prefect-home" / "prefect.db").is_file()
    state = json.loads((root / "prefect-home" / "challenge-server.json").read_text())
    ui = f"http://127.0.0.1:{state['port']}"
    assert demo.stderr.count(f"UI at {ui}") == 1  # said once, when it started
    assert demo.stdout.rstrip().splitlines()[-1] == f"the demo's flow runs in Prefect's UI: {ui}/runs"
    with urllib.request.urlopen(f"{ui}/api/flow_runs/count", data=b"{}", timeout=30) as response:
        assert int(response.read()) >= 8  # collect, publish, baselines, score, twice: on the server that stays up
    assert prefect_servers_under(root) == [state["pid"]]


def test_the_next_command_reuses_the_server(demoed: tuple[dict[str, str], Path]) -> None:
    env, root = demoed
    pid = json.loads((root / "prefect-home" / "challenge-server.json").read_text())["pid"]
    score = run(env, root, "--config", str(root / "demo" / "challenge.yaml"), "score")
    assert score.returncode == 0, score.stderr[-3000:]
    assert "0 new submission(s)" in score.stdout and "local Prefect server" not in score.stderr
    assert prefect_servers_under(root) == [pid]


def test_no_server_uses_the_temporary_server(demoed: tuple[dict[str, str], Path]) -> None:
    """`--no-server` on another new PREFECT_HOME: Prefect's temporary server, its database created first,
    its start-up timeout 180 s (read by `challenge server status` through Prefect's settings); no server stays."""
    env, root = demoed
    other = {**env, "PREFECT_HOME": str(root / "other-home")}
    score = run(other, root, "--no-server", "--config", str(root / "demo" / "challenge.yaml"), "score")
    assert score.returncode == 0, score.stderr[-3000:]
    assert "creating Prefect's local database" in score.stderr and "local Prefect server" not in score.stderr
    assert not (root / "other-home" / "challenge-server.json").exists()
    status = run(other, root, "server", "status")
    assert "local Prefect server: not running" in status.stdout
    assert "temporary API server (--no-server): start-up timeout 180 s" in status.stdout


@pytest.mark.parametrize("args, message", [
    (["publish", "--release", "demo-1"], "error: release 'demo-1' already exists"),
    (["publish", "--release", "../x"], "error: release name '../x' is not allowed"),
    (["score", "--task", "nope"], "error: unknown task id(s) nope: the current release has digits, febrl-people, penguins"),
    (["baseline", "--task", "nope"], "error: "),
])
def test_a_refusal_is_one_line(demoed: tuple[dict[str, str], Path], args: list[str], message: str) -> None:
    env, root = demoed
    result = run(env, root, "--config", str(root / "demo" / "challenge.yaml"), *args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_debug_shows_the_traceback(demoed: tuple[dict[str, str], Path]) -> None:
    env, root = demoed
    result = run(env, root, "--config", str(root / "demo" / "challenge.yaml"), "publish", "--release", "demo-1", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr and "PublishError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: release 'demo-1' already exists")
