"""`challenge init DIR`: the challenge is named after its folder (a valid name, whatever the folder is
called), unless --name and --title say otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from challenge.app.cli import main
from challenge.app.scaffold import NAME, name_for, title_for
from challenge.core.config import load_config


@pytest.mark.parametrize(("folder", "name", "title"), [
    ("penguin-cup", "penguin-cup", "Penguin cup"),
    ("My Challenge_2026", "my-challenge-2026", "My Challenge 2026"),
    ("Défi été", "defi-ete", "Défi été"),
    ("x", "x-challenge", "X"),  # a name has at least 2 characters
    ("---", "my-challenge", "My challenge"),  # nothing usable left
    ("日本語", "my-challenge", "日本語"),
    ("a" * 100, "a" * 63, "A" + "a" * 99),
    ("-lead-and-trail-", "lead-and-trail", "Lead and trail"),
])
def test_the_name_and_title_come_from_the_folder(tmp_path: Path, folder: str, name: str, title: str) -> None:
    assert name_for(tmp_path / folder) == name and NAME.match(name)
    assert title_for(tmp_path / folder) == title


@pytest.mark.parametrize("folder", ["Winter Cup: 2026 #1", "it's \"quoted\"", "plain"])
def test_init_writes_a_config_that_loads_with_the_folders_name(tmp_path: Path, folder: str) -> None:
    assert main(["init", str(tmp_path / folder)]) == 0
    config = load_config(tmp_path / folder / "challenge.yaml")
    assert config.name == name_for(tmp_path / folder) and config.title == title_for(tmp_path / folder)
    assert config.name != "demo-challenge"


def test_name_and_title_given_are_used_as_they_are(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path / "c"), "--name", "spring-cup", "--title", 'Spring cup: "the big one"']) == 0
    config = load_config(tmp_path / "c" / "challenge.yaml")
    assert (config.name, config.title) == ("spring-cup", 'Spring cup: "the big one"')


@pytest.mark.parametrize(("args", "needle"), [
    (["--name", "Spring_Cup"], "--name 'Spring_Cup'"),
    (["--name", "x"], "--name 'x'"),
    (["--title", "two\nlines"], "--title"),
])
def test_a_bad_name_or_title_is_refused_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   args: list[str], needle: str) -> None:
    assert main(["init", str(tmp_path / "c"), *args]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
