"""`challenge`: the organizer's command line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from challenge.app.prefect_setup import prepare_local_api, set_defaults, temporary_requested
from challenge.app.reaper import watch_this_process
from challenge.app.scaffold import init_challenge
from challenge.app.terminal import error_line, hide_tracebacks_on_console, quiet_exit_chatter
from challenge.core import catalog
from challenge.core.catalog import FEEDBACK_SUFFIX
from challenge.core.errors import ChallengeError, DropsFailed, ScoringErrors
from challenge.core.inert import terminal_text
from challenge.core.task_runners import RUNNER_ENV, on_runner

if TYPE_CHECKING:
    from challenge.core.config import ChallengeConfig

def _config(args: argparse.Namespace) -> tuple["ChallengeConfig", str]:
    """Load challenge.yaml here, so a bad file is reported before any flow starts; the flows get its path."""
    from challenge.core.config import find_config_path, load_config

    return load_config(args.config), str(find_config_path(args.config).resolve())


def cmd_init(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    config_path = folder / "challenge.yaml"
    if config_path.exists() and not args.force:
        print(f"{config_path} already exists; use --force to overwrite it", file=sys.stderr)
        return 2
    init_challenge(folder, args.name, args.title, args.with_examples)  # name and title default to the folder's
    print(f"wrote {config_path}" + (f" and the example drops under {folder / 'intake'}" if args.with_examples else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from challenge.app.demo import run_demo

    run_demo(args.dir, task_runner=args.task_runner)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from challenge.flows.collect_datasets import collect_datasets

    config, path = _config(args)
    try:
        summary = on_runner(collect_datasets, args.task_runner)(config_path=path, tasks=args.task or None, force=args.force)
    except DropsFailed as failed:
        summary = failed.result
    for outcome in summary.outcomes:
        status = "unchanged, " if outcome.status == "unchanged" else ""
        print(f"{outcome.verdict.upper():4}  {terminal_text(outcome.drop)}  ({status}report: {terminal_text(outcome.report)})")
        if outcome.staged:
            print(f"      staged: {terminal_text(outcome.staged)}")
        for line in outcome.failures:  # the drop's own names and values: no escape sequence reaches the terminal
            print(f"      - {terminal_text(line, 1000)}")
    counts = summary.counts()
    print(f"{counts['drops']} drop(s): {counts['passed']} passed, {counts['failed']} failed, {counts['unchanged']} unchanged")
    if not summary.outcomes:
        print(f"no drops found under {config.storage.intake}", file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from challenge.flows.publish_release import publish_release

    _, path = _config(args)
    result = on_runner(publish_release, args.task_runner)(config_path=path, release=args.release, tasks=args.task or None)
    print(f"release {result.release} published at {result.location}")
    for s in result.summaries:
        counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items())
        print(f"  {s['task_id']:20} {s['kind']:15} {counts}  ({s['action']})")
        for finding in s["leaks"]:
            print(f"  {'':20} leak check (below the limits): {finding}")
        print(f"  {'':20} card: {s['card']}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from challenge.flows.score_submissions import score_submissions

    _, path = _config(args)
    try:
        result = on_runner(score_submissions, args.task_runner)(config_path=path, rescore=args.rescore, tasks=args.task or None)
    except ScoringErrors as failed:
        result = failed.result
    if result.message:
        print(f"{result.message}; run `challenge publish` first")
        return 0
    if result.rescored is not None:
        print(f"rescored {result.rescored} submission(s); leaderboard: {result.leaderboard}")
        return 0
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(result.statuses.items())) or "nothing new"
    print(f"{result.pending} new submission(s): {statuses}")
    if result.notices:
        print(f"{len(result.notices)} upload(s) that are not submissions (told why in their {FEEDBACK_SUFFIX})")
    for key, reason in result.errors:
        print(f"  internal error, retried on the next run: {terminal_text(key)}: {terminal_text(reason)}")
    print(f"leaderboard: {result.leaderboard}")
    return 1 if result.errors else 0


def _print_board(board: dict, track: str | None, fmt: str, tasks: bool = False) -> None:
    from challenge.app.board_text import print_board

    print_board(board, track, fmt, tasks)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    import json

    from challenge.core.config import load_config
    from challenge.core.run_context import RunContext

    public = RunContext(load_config(args.config)).public
    folder = {"live": catalog.LEADERBOARD, "final": catalog.FINAL_BOARD, "benchmark": catalog.BENCHMARK_BOARD}[args.board]
    if not public.exists(catalog.board_json(folder)):
        hint = {"live": "run `challenge score` first", "final": "the challenge is not finalized (`challenge finalize`)",
                "benchmark": "no post-challenge board (policy.after_close: benchmark, after the close)"}[args.board]
        print(f"no {args.board} leaderboard yet: {hint}", file=sys.stderr)
        return 2
    board = json.loads(public.read_bytes(catalog.board_json(folder)))
    if args.track and args.track not in board["tracks"]:
        print(f"unknown track {args.track!r}; tracks: {', '.join(sorted(board['tracks']))}", file=sys.stderr)
        return 2
    _print_board(board, args.track, args.format, args.tasks)
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from challenge.flows.score_submissions import finalize_challenge

    _, path = _config(args)
    result = finalize_challenge(config_path=path, force=args.force)
    print(f"finalized: the final standings (private scores) are at {result.leaderboard}")
    _print_board(result.board, None, "table")
    return 0


def cmd_correct_answers(args: argparse.Namespace) -> int:
    from challenge.flows.correct_answers import correct_answers

    _, path = _config(args)
    result = correct_answers(task=args.task, file=args.file, config_path=path)
    c, run = result.correction, result.scoring
    print(f"{c.task_id}: answer key version {c.version} in use in release {c.release}: {c.labels_changed} label(s) changed "
          f"(SHA-256 {c.answers_sha256[:16]}…, was {c.previous_sha256[:16]}…)")
    print(f"  staged data: {c.staged}")
    print(f"  {run.corrected} result(s) rescored, {run.superseded} superseded (upload gone or replaced); the teams' "
          f"feedback and history say so; leaderboard: {run.leaderboard}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from challenge.flows.score_submissions import results_report

    _, path = _config(args)
    print(f"results report: {results_report(config_path=path)} (and results.md beside it)")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Train and submit the baselines of the latest release (team `baseline`); one line per task."""
    from challenge.flows.run_baselines import run_baselines

    _, path = _config(args)
    result = on_runner(run_baselines, args.task_runner)(config_path=path, tasks=args.task or None)
    for s in result.baselines:
        state = "uploaded" if s["uploaded"] else "unchanged"
        print(f"{s['task_id']:20} {s['metric']} {s['validation_score']:.4f} (validation)  {s['train_seconds']:.1f}s  "
              f"{s['model']}  {state}: {s['submission']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    from challenge.app.prefect_setup import runs_ui_url
    from challenge.flows.deployments import serve_all

    config, path = _config(args)
    if not PREFECT_API_URL.value():
        print("warning: PREFECT_API_URL is not set and the local server is off (--no-server, $CHALLENGE_NO_SERVER), "
              "so runs go to a temporary API without a UI", file=sys.stderr)
    elif runs_ui_url():
        print(f"flow runs in Prefect's UI: {runs_ui_url()}")
    print(f"serving the deployments of {config.name} (score-submissions every {args.score_every:g} min); "
          "Ctrl-C stops")
    serve_all(config, path, args.score_every, args.collect_cron, args.limit)
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    """`challenge server start|status|stop`: the local Prefect server of this PREFECT_HOME."""
    from prefect.settings import get_current_settings

    from challenge.app import local_server
    from challenge.app.prefect_setup import configured_api_url, use_local_server

    settings = get_current_settings()
    home, chosen = Path(settings.home), configured_api_url()
    if args.action == "start":
        if chosen:
            print(f"PREFECT_API_URL={chosen} is set: commands use that server, so no local one is started", file=sys.stderr)
            return 2
        server = local_server.status(home)
        api = use_local_server(sys.stderr)
        if server is not None:
            print(f"the local Prefect server is already running: UI at {api.removesuffix('/api')}")
        return 0
    if args.action == "stop":
        stopped = local_server.stop(home)
        print(f"stopped the local Prefect server (PID {stopped.pid}, port {stopped.port})" if stopped
              else f"no local Prefect server is running for PREFECT_HOME={home}")
        return 0
    server = local_server.status(home)
    if server is None:
        print(f"local Prefect server: not running for PREFECT_HOME={home} (the next command that runs a flow starts it)")
    else:
        state = "running" if local_server.answers(server.port, home) else "starting (not answering yet)"
        print(f"local Prefect server: {state}, PID {server.pid}, UI at {server.ui_url}, API {server.api_url}, "
              f"log {server.log}")
    if chosen:
        print(f"PREFECT_API_URL={chosen} is set: commands use that server, not the local one")
    print(f"temporary API server (--no-server): start-up timeout {settings.server.ephemeral.startup_timeout_seconds} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="challenge", description=__doc__)
    parser.add_argument("--config", help="path to challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml)")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (default: one line)")
    parser.add_argument("--task-runner", choices=["threads", "dask"],
                        help="run the flows' tasks in threads (default) or on Dask ($CHALLENGE_TASK_RUNNER; "
                             "$CHALLENGE_DASK_ADDRESS names an existing scheduler)")
    parser.add_argument("--no-server", action="store_true",
                        help="run the flows on Prefect's temporary API server, started and stopped with the command, "
                             "instead of the local server that stays up ($CHALLENGE_NO_SERVER=1); both only when "
                             "PREFECT_API_URL is unset")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)  # `challenge publish --debug` works as well
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--no-server", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    init = sub.add_parser("init", parents=[common], help="write an example challenge.yaml using local storage under DIR")
    init.add_argument("dir")
    init.add_argument("--name")
    init.add_argument("--title")
    init.add_argument("--with-examples", action="store_true", help="also copy the bundled example drops into intake")
    init.add_argument("--force", action="store_true")
    init.set_defaults(func=cmd_init)

    demo = sub.add_parser("demo", parents=[common], help="run the whole lifecycle on example data in DIR (reuses DIR when run again)")
    demo.add_argument("dir", nargs="?", default="build/demo")
    demo.set_defaults(func=cmd_demo, prefect=True)

    collect = sub.add_parser("collect", parents=[common], help="gate contributors' drops (exit 1 when any drop fails)")
    collect.add_argument("--task", action="append", metavar="ID", help="only this task id (repeatable)")
    collect.add_argument("--force", action="store_true", help="re-gate drops even when unchanged")
    collect.set_defaults(func=cmd_collect, prefect=True)

    publish = sub.add_parser("publish", parents=[common], help="publish staged tasks as a new immutable release")
    publish.add_argument("--release", metavar="NAME", help="release name (default: UTC timestamp)")
    publish.add_argument("--task", action="append", metavar="ID",
                         help="rebuild this task even if unchanged (repeatable); every staged task is in the release")
    publish.set_defaults(func=cmd_publish, prefect=True)

    score = sub.add_parser("score", parents=[common], help="score new submissions and rebuild the leaderboards")
    score.add_argument("--rescore", action="store_true", help="recompute every scored result (after an answer-key fix)")
    score.add_argument("--task", action="append", metavar="ID", help="only this task (repeatable)")
    score.set_defaults(func=cmd_score, prefect=True)

    board = sub.add_parser("leaderboard", parents=[common], help="print the current leaderboard")
    board.add_argument("--track", help="one track only (classification, matching)")
    board.add_argument("--format", choices=["table", "csv", "json"], default="table")
    board.add_argument("--tasks", action="store_true", help="also one table per task (table format)")
    board.add_argument("--board", choices=["live", "final", "benchmark"], default="live",
                       help="the live board (default), the final snapshot, or the post-challenge benchmark board")
    board.set_defaults(func=cmd_leaderboard)

    finalize = sub.add_parser("finalize", parents=[common], help="switch leaderboards to private scores (end of the challenge)")
    finalize.add_argument("--force", action="store_true",
                          help="rebuild the final snapshot of a finalized challenge (the previous one is kept)")
    finalize.set_defaults(func=cmd_finalize, prefect=True)

    report = sub.add_parser("report", parents=[common], help="write the results report of a finalized challenge")
    report.set_defaults(func=cmd_report, prefect=True)

    correct = sub.add_parser("correct-answers", parents=[common],
                             help="fix labels of a task's answer key (a new version; the old one kept) and rescore")
    correct.add_argument("--task", required=True, metavar="ID", help="the task whose answer key is corrected")
    correct.add_argument("--file", required=True, metavar="CSV", help="columns id,label: published test ids, right labels")
    correct.set_defaults(func=cmd_correct_answers, prefect=True)

    baseline = sub.add_parser("baseline", parents=[common], help="train a scikit-learn baseline per task and submit it as team 'baseline'")
    baseline.add_argument("--task", action="append", metavar="ID", help="only this task id (repeatable)")
    baseline.set_defaults(func=cmd_baseline, prefect=True)

    serve = sub.add_parser("serve", parents=[common], help="serve the five deployments with their schedules from this process "
                                         "(on PREFECT_API_URL, else the local server)")
    serve.add_argument("--score-every", type=float, default=5, metavar="MINUTES", help="scoring interval (default 5)")
    serve.add_argument("--collect-cron", metavar="CRON", help="also collect on this cron, e.g. '0 6 * * *'")
    serve.add_argument("--limit", type=int, help="at most this many flow runs at once")
    serve.set_defaults(func=cmd_serve, prefect=True)

    server = sub.add_parser("server", parents=[common], help="the local Prefect server the commands use when "
                            "PREFECT_API_URL is unset (started by the first one, kept running): start, status, stop")
    server.add_argument("action", choices=["start", "status", "stop"])
    server.set_defaults(func=cmd_server)

    from challenge.app.iam import add_iam_parser
    from challenge.app.participant_cli import add_participant_parsers

    add_iam_parser(sub)
    add_participant_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    set_defaults()  # before Prefect is imported (inside the commands)
    quiet_exit_chatter()
    args = build_parser().parse_args(argv)
    if args.task_runner and args.command == "serve":  # served runs are subprocesses: they read it from the environment
        os.environ[RUNNER_ENV] = args.task_runner
    try:
        if getattr(args, "prefect", False):
            watch_this_process()  # killed, the command leaves no temporary server or Dask worker behind
            prepare_local_api(temporary=temporary_requested(args.no_server))
            if not args.debug and args.command != "serve":  # a service's own log keeps its tracebacks
                hide_tracebacks_on_console()
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line on the terminal; the failed flow run's log in Prefect keeps the traceback
        if args.debug:
            traceback.print_exc()
        print(terminal_text(error_line(exc, args.debug), 8000, lines=True), file=sys.stderr)
        return 2 if isinstance(exc, ChallengeError) else 1


if __name__ == "__main__":
    sys.exit(main())
