"""The package as `pip install .` installs it (not editable): one import name, `challenge` (flows/, tasks/
and expectations/ install inside it), and the example drops are package data, so `challenge init DIR
--with-examples` and `challenge demo` work outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout (once for the module: both tests install it)."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(root / "dist"),
                            str(_copy(root))], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (found,) = (root / "dist").glob("challenge-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a folder of its own, which the tests import from and do not change."""
    target = tmp_path_factory.mktemp("site")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    return target


def test_installed_package_writes_the_example_drops(wheel: Path, site: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "challenge/example_drops/penguin-lab/penguins/task.yaml" in names
    assert sum(n.startswith("challenge/example_drops/vision-team/digits/images/") for n in names) == 200
    target = site
    assert {p.name for p in target.iterdir()} - {"bin"} == {"challenge", "challenge-0.1.0.dist-info"}
    assert {"flows", "tasks", "expectations"} <= {p.name for p in (target / "challenge").iterdir()}
    # Run from a folder outside the checkout, importing the installed copy (the test venv supplies the
    # dependencies; the checkout's editable finder comes after PYTHONPATH).
    script = ("import challenge, sys; from challenge.app.cli import main; print(challenge.__file__); "
              "sys.exit(main(['init', 'mychallenge', '--with-examples']))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(target))
    for drop in ("penguin-lab/penguins", "vision-team/digits", "linkage-team/febrl-people"):
        assert (tmp_path / "mychallenge" / "intake" / drop / "task.yaml").is_file(), drop
    assert (tmp_path / "mychallenge" / "challenge.yaml").is_file()


def test_installed_package_runs_the_demo(site: Path, tmp_path: Path) -> None:
    target = site
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "CHALLENGE_CONFIG"}
    env.update(PYTHONPATH=str(target), PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    script = ("import challenge, sys; from challenge.app.cli import main; print(challenge.__file__, flush=True); "
              "sys.exit(main(['demo', 'demo']))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0].startswith(str(target))
    assert "[10/10] board" in result.stdout and (tmp_path / "demo" / "public" / "leaderboard" / "index.html").is_file()


def _copy(tmp_path: Path) -> Path:
    """The checkout without its build state (building in the checkout would leave build/lib and egg-info there)."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    return source
