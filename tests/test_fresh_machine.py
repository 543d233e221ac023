"""The CLI on a machine where Prefect has never run: `challenge demo` with a brand-new PREFECT_HOME,
in a subprocess as a user types it; then refusals print one `error:` line and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "challenge"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """An environment whose PREFECT_HOME does not exist yet (no database, no profile), and a new folder."""
    root = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "CHALLENGE_CONFIG"}
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    return env, root


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_demo_runs_on_a_new_prefect_home(fresh: tuple[dict[str, str], Path]) -> None:
    env, root = fresh
    assert not (root / "prefect-home").exists()
    demo = run(env, root, "demo", str(root / "demo"))
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "creating Prefect's local database" in demo.stderr  # the first run says why it waits
    assert "[10/10] board" in demo.stdout and "leaderboard page: " in demo.stdout
    assert "Traceback" not in demo.stdout + demo.stderr
    assert (root / "prefect-home" / "prefect.db").is_file()


@pytest.mark.parametrize("args, message", [
    (["publish", "--release", "demo-1"], "error: release 'demo-1' already exists"),
    (["publish", "--release", "../x"], "error: release name '../x' is not allowed"),
    (["score", "--task", "nope"], "error: unknown task id(s) nope: the current release has digits, febrl-people, penguins"),
    (["baseline", "--task", "nope"], "error: "),
])
def test_a_refusal_is_one_line(fresh: tuple[dict[str, str], Path], args: list[str], message: str) -> None:
    env, root = fresh
    if not (root / "demo" / "public" / "latest.json").exists():
        pytest.skip("needs the demo of test_demo_runs_on_a_new_prefect_home")
    result = run(env, root, "--config", str(root / "demo" / "challenge.yaml"), *args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_debug_shows_the_traceback(fresh: tuple[dict[str, str], Path]) -> None:
    env, root = fresh
    if not (root / "demo" / "public" / "latest.json").exists():
        pytest.skip("needs the demo of test_demo_runs_on_a_new_prefect_home")
    result = run(env, root, "--config", str(root / "demo" / "challenge.yaml"), "publish", "--release", "demo-1", "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr and "PublishError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: release 'demo-1' already exists")
