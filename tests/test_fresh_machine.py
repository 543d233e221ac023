"""The CLI on a machine where Prefect has never run, from the package as `pip install .` installs it (not
editable: one import name, `challenge`, with flows/, tasks/ and expectations/ inside it, and the example drops
as package data, so `challenge init DIR --with-examples` and `challenge demo` work outside the checkout).
`challenge demo` with a brand-new PREFECT_HOME, in a subprocess as a user types it (it starts the local
Prefect server, which the later commands reuse and the module stops at its end); then refusals print one
`error:` line and no traceback, and `--no-server` runs on Prefect's temporary server instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import prefect_servers_under
from pydantic import TypeAdapter

from challenge.core import catalog, records

CLI = Path(sys.executable).parent / "challenge"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout (once for the module)."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"),
                            str(_copy(root))], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (found,) = (root / "dist").glob("challenge-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a folder of its own, which the commands import from and do not
    change (the test venv supplies the dependencies; the checkout's editable finder comes after PYTHONPATH)."""
    target = tmp_path_factory.mktemp("site")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    return target


def _copy(tmp_path: Path) -> Path:
    """The checkout without its build state (building in the checkout would leave build/lib and egg-info there)."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    return source


@pytest.fixture(scope="module")
def fresh(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose PREFECT_HOME does not exist yet (no database, no profile), whose commands import
    the installed package, and a new folder; at the end the local server the commands started is stopped, and
    nothing of it may be left."""
    root = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("CHALLENGE_CONFIG", "CHALLENGE_NO_SERVER")}
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING", PYTHONPATH=str(site))
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


def test_the_wheel_holds_one_package_with_the_example_drops(wheel: Path, site: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "challenge/example_drops/penguin-lab/penguins/task.yaml" in names
    assert sum(n.startswith("challenge/example_drops/vision-team/digits/images/") for n in names) == 200
    assert {p.name for p in site.iterdir()} - {"bin"} == {"challenge", "challenge-0.1.0.dist-info"}
    assert {"flows", "tasks", "expectations"} <= {p.name for p in (site / "challenge").iterdir()}
    # from a folder outside the checkout, importing the installed copy
    script = ("import challenge, sys; from challenge.app.cli import main; print(challenge.__file__); "
              "sys.exit(main(['init', 'mychallenge', '--with-examples']))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(site))
    for drop in ("penguin-lab/penguins", "vision-team/digits", "linkage-team/febrl-people"):
        assert (tmp_path / "mychallenge" / "intake" / drop / "task.yaml").is_file(), drop
    assert (tmp_path / "mychallenge" / "challenge.yaml").is_file()


def test_demo_runs_on_a_new_prefect_home(fresh: tuple[dict[str, str], Path], site: Path,
                                         demo: subprocess.CompletedProcess[str]) -> None:
    env, root = fresh
    assert demo.returncode == 0, demo.stderr[-3000:]
    imported = subprocess.run([str(CLI.parent / "python"), "-c", "import challenge; print(challenge.__file__)"],
                              env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert imported.stdout.startswith(str(site)), imported  # the demo ran the installed package, not the checkout
    text = demo.stdout
    assert [int(n) for n in re.findall(r"^\[(\d+)/10\]", text, re.M)] == list(range(1, 11))
    assert "3 drop(s): 3 passed, 0 failed" in text and "12 new submission(s): 3 invalid, 9 scored" in text
    # the second release: penguins changed, the other tasks carried over; what happened to each team's results
    assert "release demo-2: digits carried over from demo-1" in text and "penguins built" in text
    assert "3 result(s) superseded this run" in text
    for team in ("team-a", "team-b", "baseline"):
        assert (f"{team}: kept on the boards: digits, febrl-people; superseded (task changed, resubmit): penguins; "
                f"scored against demo-2: penguins") in text
    board = json.loads((root / "demo" / "public" / catalog.BOARD_JSON).read_text())
    for task_id in ("digits", "penguins", "febrl-people"):
        entries = board["tasks"][task_id]["entries"]
        assert {e["team"] for e in entries} == {"baseline", "team-a", "team-b"}
        assert [e["rank"] for e in entries if not e["baseline"]] == [1, 2]
        assert [e["rank"] for e in entries if e["baseline"]] == [None]
    assert {e["team"] for e in board["tracks"]["classification"]["entries"]} == {"baseline", "team-a", "team-b"}
    page = root / "demo" / "public" / "leaderboard" / "index.html"
    assert page.is_file() and f"leaderboard page: {page}" in text
    assert_records_typed(root / "demo")
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


def test_the_demo_again_reuses_its_folder(demoed: tuple[dict[str, str], Path]) -> None:
    env, root = demoed
    before = json.loads((root / "demo" / "public" / catalog.BOARD_JSON).read_text())
    again = run(env, root, "demo", str(root / "demo"))
    assert again.returncode == 0, again.stderr[-3000:]
    second = again.stdout
    assert "reusing" in second and "3 unchanged" in second and "release demo-2 already published" in second
    assert "0 uploaded as team baseline" in second and "0 new submission(s): nothing new" in second
    assert json.loads((root / "demo" / "public" / catalog.BOARD_JSON).read_text())["tasks"] == before["tasks"]


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


def assert_records_typed(folder: Path) -> None:
    """Every result record, feedback file, history and leaderboard a demo season stores has exactly the fields and types of
    challenge/core/records.py (unknown fields refused): a writer cannot drift from its type."""
    kinds = {"record": records.ResultRecord, "history": records.History, "final": records.FinalAnswer}
    checked: dict[str, int] = {}
    for path in sorted((folder / "private" / "results").rglob("*.json")):
        TypeAdapter(records.ErrorRecord if path.name.endswith(".error.json") else records.ResultRecord).validate_json(
            path.read_bytes())
        checked["record"] = checked.get("record", 0) + 1
        assert json.loads(path.read_bytes())["schema_version"] == records.RESULT_SCHEMA_VERSION
    submissions = folder / "submissions"
    for path in sorted([*submissions.rglob("*.result.json"), *submissions.rglob("history.json")]):
        body = json.loads(path.read_bytes())
        if path.name == "history.json":
            kind = "history"
        elif path.name == "FINAL.result.json":
            kind = "final"
        else:
            kind = "feedback" if "public_score" in body else "notice"
        TypeAdapter(kinds.get(kind) or (records.Feedback if kind == "feedback" else records.Notice)).validate_python(body)
        checked[kind] = checked.get(kind, 0) + 1
    assert checked.get("record", 0) >= 12 and checked.get("feedback", 0) >= 12 and checked.get("history", 0) >= 9, checked
    boards = sorted((folder / "public" / "leaderboard").rglob("leaderboard.json"))
    for path in boards:
        TypeAdapter(records.Board).validate_json(path.read_bytes())
    assert folder / "public" / catalog.BOARD_JSON in boards  # (the final and benchmark boards: tests/test_season.py)
    notes = sorted((folder / "private" / "reports").glob("*/latest-*.json"))
    for path in notes:
        TypeAdapter(records.GateNote).validate_json(path.read_bytes())
    assert len(notes) == 3, notes  # one per example drop
    TypeAdapter(dict[str, records.BoardIntervals]).validate_json((folder / "private" / catalog.INTERVALS_CACHE).read_bytes())
