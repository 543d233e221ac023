"""What the boards and the teams' histories are built from, read once per refresh."""

from __future__ import annotations

from dataclasses import dataclass

from challenge.core.records import ResultRecord
from challenge.tasks.release.latest import ReleasedTask


@dataclass(frozen=True)
class Standings:
    """The current release, its tasks, every result record, and the submissions each team's FINAL file
    picks ((team, task) → submission ids; empty where a board takes none)."""

    release: str
    tasks: dict[str, ReleasedTask]
    records: list[ResultRecord]
    choices: dict[tuple[str, str], list[str]]
