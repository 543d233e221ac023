"""Refresh the leaderboards: read what they are built from, build them, publish them (SPEC §9); write
the final snapshot once, at finalize."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import challenge
from challenge.core import catalog
from challenge.core.catalog import Latest
from challenge.core.errors import ChallengeError
from challenge.core.records import Board, ResultRecord, Snapshot
from challenge.core.run_context import RunContext
from challenge.tasks.artifacts import leaderboard_artifacts
from challenge.tasks.boards.intervals import add_intervals
from challenge.tasks.boards.results_report import render_report_html, render_report_markdown
from challenge.tasks.boards.tables import build_leaderboard, write_leaderboard
from challenge.tasks.release.latest import ReleasedTask, current_release, release_tasks
from challenge.tasks.scoring.final_picks import answer_final_choices
from challenge.tasks.scoring.history import write_histories
from challenge.tasks.scoring.records import load_results
from challenge.tasks.scoring.standings import Standings
from challenge.tasks.scoring.submissions import Inbox, discover


@dataclass(frozen=True)
class AlreadyRead:
    """What a flow run has read already and refresh_leaderboard need not read again (None: read it)."""

    records: list[ResultRecord] | None = None
    inbox: Inbox | None = None
    latest: Latest | None = None
    released: dict[str, ReleasedTask] | None = None


def refresh_leaderboard(run: RunContext, read: AlreadyRead = AlreadyRead()) -> tuple[Board, str]:
    """Rebuild every leaderboard from the result records, publish it and show it as artifacts; answer
    the teams' FINAL files; write the teams' history.json files that changed; with
    `policy.after_close: benchmark`, once the challenge is finalized, the post-challenge board too (ranked
    on the whole test set: before finalize that would tell the private part's labels while FINAL picks can
    still change). Returns the board and the page's address."""
    config, public, private, submissions = run.config, run.public, run.private, run.submissions
    latest = current_release(public) if read.latest is None else read.latest
    released = release_tasks(public, latest, private) if read.released is None else read.released
    records = load_results(private) if read.records is None else read.records
    inbox = discover(submissions) if read.inbox is None else read.inbox
    choices = answer_final_choices(submissions, private, inbox, records, released, config.policy.final_picks)
    standings = Standings(latest.release, released, records, choices)
    final = private.exists(catalog.FINAL_MARKER)
    names = {t.id: t.name for t in config.teams}
    board = build_leaderboard(config.name, standings, final, names, withdrawn=latest.withdrawn)
    add_intervals(board, released, run, "live")
    write_leaderboard(public, board, config.title)
    if config.policy.after_close == "benchmark" and final:  # before finalize its scores would tell the private part
        benchmark = build_leaderboard(config.name, replace(standings, choices={}), True, names, benchmark=True,
                                      withdrawn=latest.withdrawn)
        add_intervals(benchmark, released, run, "benchmark")
        write_leaderboard(public, benchmark, config.title, catalog.BENCHMARK_BOARD)
    write_histories(submissions, private, standings, config, inbox.histories)
    leaderboard_artifacts(run, board)
    return board, public.uri_for(catalog.PAGE)


def snapshot_facts(latest: Latest, released: dict[str, ReleasedTask], finalized_at: str) -> Snapshot:
    """What the final standings were computed with: code version, release, each task's answer key."""
    return {"finalized_at": finalized_at, "code_version": challenge.__version__, "release": latest.release,
            "tasks": {t: {"answers_sha256": task.answers_sha256, "answer_version": task.answer_version,
                          "changed_in": task.changed_in} for t, task in sorted(released.items())}}


def write_final_snapshot(run: RunContext, finalized_at: str, force: bool = False) -> tuple[Board, str, str | None]:
    """`<public>/leaderboard/final/`: the final standings (JSON, CSVs, page), written once; no scoring run
    touches it. Refused when it exists, unless `force`: then the previous snapshot is first copied to
    `leaderboard/final-replaced/<its finalized time>/`. Returns the board, the page and where the previous went."""
    config, public, private, submissions = run.config, run.public, run.private, run.submissions
    previous = None
    if public.exists(catalog.board_json(catalog.FINAL_BOARD)):
        if not force:
            raise ChallengeError(
                f"the challenge is already finalized: the final snapshot is {public.uri_for(catalog.board_page(catalog.FINAL_BOARD))} "
                "and stays as it is; run `challenge finalize --force` to rebuild it (the current one is kept)")
        old = json.loads(public.read_bytes(catalog.board_json(catalog.FINAL_BOARD)))
        stamp = str((old.get("snapshot") or {}).get("finalized_at") or old.get("updated_at") or "unknown").replace(":", "-")
        target = catalog.replaced_final_folder(f"{stamp}-replaced-{len(list(public.list(catalog.REPLACED_FINALS + '/')))}")
        for info in public.list(catalog.FINAL_BOARD + "/"):
            public.copy(info.key, f"{target}/{info.key[len(catalog.FINAL_BOARD) + 1:]}")
        previous = public.uri_for(target)
    latest = current_release(public)
    released = release_tasks(public, latest, private)
    records = load_results(private)
    inbox = discover(submissions)
    choices = answer_final_choices(submissions, private, inbox, records, released, config.policy.final_picks)
    board = build_leaderboard(config.name, Standings(latest.release, released, records, choices), True,
                              {t.id: t.name for t in config.teams}, withdrawn=latest.withdrawn)
    board["snapshot"] = snapshot_facts(latest, released, finalized_at)
    add_intervals(board, released, run, "final")
    write_leaderboard(public, board, config.title, catalog.FINAL_BOARD)
    return board, public.uri_for(catalog.board_page(catalog.FINAL_BOARD)), previous


def write_results_report(run: RunContext) -> str:
    """`<public>/leaderboard/final/results.html` and `results.md`, from the final snapshot and the public
    board at the close; returns the page's address."""
    config, public, private = run.config, run.public, run.private
    if not public.exists(catalog.board_json(catalog.FINAL_BOARD)):
        raise ChallengeError(f"no final snapshot at {public.uri_for(catalog.board_json(catalog.FINAL_BOARD))}: the report "
                             "is written from it; run `challenge finalize` first")
    final = json.loads(public.read_bytes(catalog.board_json(catalog.FINAL_BOARD)))
    latest = current_release(public)
    released = release_tasks(public, latest, private)
    at_close = build_leaderboard(config.name, Standings(latest.release, released, load_results(private), {}), False,
                                 {t.id: t.name for t in config.teams}, withdrawn=latest.withdrawn)
    public.write_bytes(catalog.RESULTS_REPORT_HTML, render_report_html(final, at_close, config.title).encode())
    public.write_bytes(catalog.RESULTS_REPORT_MARKDOWN, render_report_markdown(final, at_close, config.title).encode())
    return public.uri_for(catalog.RESULTS_REPORT_HTML)
