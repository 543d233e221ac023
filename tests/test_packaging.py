"""The package as `pip install .` installs it (not editable): the example drops are package data,
so `challenge init DIR --with-examples` works outside the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_installed_package_writes_the_example_drops(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/lib and egg-info there
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("challenge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "challenge/example_drops/penguin-lab/penguins/task.yaml" in names
    assert sum(n.startswith("challenge/example_drops/vision-team/digits/images/") for n in names) == 200
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    # Run from a folder outside the checkout, importing the installed copy (the test venv supplies the
    # dependencies; the checkout's editable finder comes after PYTHONPATH).
    script = ("import challenge, sys; from challenge.cli import main; print(challenge.__file__); "
              "sys.exit(main(['init', 'mychallenge', '--with-examples']))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(target))
    for drop in ("penguin-lab/penguins", "vision-team/digits", "linkage-team/febrl-people"):
        assert (tmp_path / "mychallenge" / "intake" / drop / "task.yaml").is_file(), drop
    assert (tmp_path / "mychallenge" / "challenge.yaml").is_file()
