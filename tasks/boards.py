"""Refresh the leaderboards: read what they are built from, build them, publish them (SPEC §9)."""

from __future__ import annotations

from typing import Any

from challenge import catalog
from challenge.catalog import Latest
from challenge.config import ChallengeConfig
from challenge.storage import Storage
from challenge.tasks.artifacts import leaderboard_artifacts
from challenge.tasks.final_choices import answer_final_choices
from challenge.tasks.leaderboard import build_leaderboard, write_leaderboard
from challenge.tasks.releases import ReleasedTask, current_release, release_tasks
from challenge.tasks.result_records import load_results
from challenge.tasks.submissions import Inbox, discover


def refresh_leaderboard(config: ChallengeConfig, public: Storage, private: Storage, submissions: Storage,
                        records: list[dict[str, Any]] | None = None, inbox: Inbox | None = None,
                        latest: Latest | None = None,
                        released: dict[str, ReleasedTask] | None = None) -> tuple[dict[str, Any], str]:
    """Rebuild every leaderboard from the result records, publish it and show it as artifacts; answer
    the teams' FINAL files. Returns the board and the page's address. `records`, `inbox`, `latest` and
    `released` are passed when already read."""
    latest = current_release(public) if latest is None else latest
    released = release_tasks(public, latest) if released is None else released
    records = load_results(private) if records is None else records
    inbox = discover(submissions) if inbox is None else inbox
    choices = answer_final_choices(submissions, private, inbox, records, latest.release, released)
    final = private.exists(catalog.FINAL_MARKER)
    board = build_leaderboard(config.name, latest.release, released, records, final, choices,
                              {t.id: t.name for t in config.teams})
    write_leaderboard(public, board, config.title)
    leaderboard_artifacts(config, board)
    return board, public.uri_for(catalog.PAGE)
