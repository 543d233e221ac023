"""A participant's commands (SPEC §10): `challenge download`, `challenge submit`, `challenge submissions`.

They need nothing but participant.yaml (challenge/app/participant_config.py) and the team's own credentials:
no challenge.yaml, no Prefect. `submit` checks the file with the scorer's own check before it uploads
anything; `submissions --wait` waits until the scorer has answered every upload.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from challenge.core import catalog
from challenge.core.errors import ChallengeError
from challenge.core.formats import utc_minute
from challenge.core.inert import terminal_text

if TYPE_CHECKING:  # the commands import the steps when they run: `challenge --help` stays quick
    from challenge.app.participant_config import ParticipantConfig
    from challenge.core.storage import Storage
    from challenge.tasks.participant.tools import TaskSubmissions

DEFAULT_FOLDER = "challenge-data"
POLL_SECONDS = 10.0


def plain(text: object, limit: int = 200) -> str:
    """Text from storage for the terminal (challenge/core/inert.py: no escape sequence, one line, cut)."""
    return terminal_text(text, limit)


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`command`, with S3's refusals said in one line a participant can act on."""

    def run(args: argparse.Namespace) -> int:
        from botocore.exceptions import ClientError

        try:
            return command(args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise
            from challenge.app.participant_config import load_participant

            me = load_participant(args.participant)
            raise ChallengeError(
                f"S3 refused {exc.operation_name} ({code}) for team {me.team}: check that participant.yaml is your "
                "team's, as the organizers sent it, and that your AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID) "
                "are your team's") from None

    return run


def _stores(args: argparse.Namespace) -> tuple["ParticipantConfig", "Storage", "Storage"]:
    from challenge.app.participant_config import load_participant

    me = load_participant(args.participant)
    return me, me.open("public"), me.open("submissions")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def cmd_download(args: argparse.Namespace) -> int:
    from challenge.tasks.participant.tools import download_task, release_task_ids
    from challenge.tasks.release.latest import current_release

    me, public, _ = _stores(args)
    latest = current_release(public)
    to = Path(args.to)
    chosen = release_task_ids(latest, args.task)

    when = f" (published {utc_minute(latest.published_at)})" if latest.published_at else ""
    print(f"release {latest.release}{when}: {len(chosen)} task(s) into {to / latest.release}")
    for task_id in chosen:
        got = download_task(public, latest.release, task_id, to)
        again = "" if got.fetched == got.files - 1 else f", {got.files - 1 - got.fetched} already there"
        print(f"  {task_id:20} {got.files} files, {_size(got.bytes)}, SHA-256 verified{again}; card: {got.folder / catalog.CARD}")
    print(f"then: challenge submit predictions.csv --task {chosen[0]} --message 'what you tried'")
    return 0


def task_folder(task: str, data: Path) -> Path:
    """The task folder `task` names: a folder holding manifest.json, else the newest download of that task id
    under `data` (<data>/<release>/<task>/)."""
    given = Path(task)
    if (given / catalog.MANIFEST).is_file():
        return given
    found = sorted(data.glob(f"*/{task}/{catalog.MANIFEST}"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise ChallengeError(f"no task folder {task!r}: neither a folder with {catalog.MANIFEST} nor a download of that "
                             f"task id under {data}/<release>/ (run `challenge download --task {task}` first, or give "
                             "--data DIR)")
    return found[-1].parent


def cmd_algorithm_check(args: argparse.Namespace) -> int:
    """Run an algorithm (folder or .zip) on one downloaded task in the sandbox the matrix runs use; print what
    the scorer would say of its predictions."""
    from challenge.core.config import AlgorithmSettings, find_config_path, load_config
    from challenge.tasks.algorithms.check import check_algorithm

    path = find_config_path(args.config)  # the challenge's bounds when its challenge.yaml is at hand
    settings = load_config(path).algorithms if args.config or path.is_file() else AlgorithmSettings()
    folder = task_folder(args.task, Path(args.data))
    print(f"running {args.algorithm} on {folder} in the sandbox (at most {settings.max_seconds:g} s, "
          f"{settings.max_memory_mb:g} MB per process, no network)", flush=True)
    checked = check_algorithm(Path(args.algorithm), folder, settings)
    run = checked.run
    print(f"{checked.task_id}: {run.status} in {run.seconds:.1f} s, peak memory {run.peak_memory_mb:.0f} MB")
    if run.stderr_tail and (checked.status != "valid" or args.verbose):
        print("the end of its stderr:\n" + "\n".join(f"  {terminal_text(line)}" for line in run.stderr_tail.splitlines()))
    print(f"{checked.status}: {terminal_text(checked.message)}")
    return 0 if checked.status == "valid" else 1


def _next_run(info: object) -> str:

    scoring = getattr(info, "scoring", None)
    if scoring is None or not scoring.next_run_due:
        last = f"; the last one ran at {utc_minute(scoring.last_run_at)}" if scoring and scoring.last_run_at else ""
        return f"the next scoring run is not announced (the organizers start them){last}"
    due = datetime.fromisoformat(scoring.next_run_due)
    every = f", every {scoring.every_minutes:g} min" if scoring.every_minutes else ""
    late = " (overdue)" if due < datetime.now(timezone.utc) else ""
    return f"the next scoring run is due at {utc_minute(scoring.next_run_due)}{late}{every}"


def cmd_submit(args: argparse.Namespace) -> int:
    from challenge.tasks.participant.tools import (
        CheckedFile,
        check_file,
        check_key_room,
        check_upload_name,
        my_submissions,
        release_task_ids,
        submit_file,
        task_key,
        window_problem,
    )
    from challenge.tasks.release.challenge_info import read_challenge_info
    from challenge.tasks.release.latest import current_release
    from challenge.tasks.scoring.notes import check_message
    from challenge.tasks.scoring.submissions import ParticipantVisibleError

    me, public, submissions = _stores(args)
    path = Path(args.file)
    if not path.is_file():
        raise ChallengeError(f"{path}: no such file")
    name = args.name or path.name
    check_upload_name(name)
    if args.message is not None:
        check_message(args.message)
    info = read_challenge_info(public)
    now = datetime.now(timezone.utc)
    refused, warning = window_problem(info, now)
    if refused:
        raise ChallengeError(f"not uploaded: {refused}")
    latest = current_release(public)
    task_id = release_task_ids(latest, [args.task])[0]
    check_key_room(submissions, catalog.submission_key(me.team, task_id, name), args.message is not None)
    size = path.stat().st_size
    if info is not None and size > info.max_submission_mb * 1024 * 1024:
        raise ChallengeError(f"not uploaded: {path} is {size / 1048576:.1f} MB; the limit is {info.max_submission_mb:g} MB")
    data = path.read_bytes()
    key = task_key(public, latest.release, task_id)
    try:
        check_file(data, name, key)
    except ParticipantVisibleError as exc:
        print(f"refused, nothing uploaded: {plain(exc, 2000)}", file=sys.stderr)
        return 1
    mine = my_submissions(submissions, me.team, [task_id])[task_id]
    limit = info.max_submissions_per_day if info else None
    left = mine.left_today(limit, now)
    if left == 0:
        raise ChallengeError(f"not uploaded: no scored submission left today for {task_id} ({limit} a day, uploads "
                             "still waiting included); the count resets at 00:00 UTC")
    print(f"checked {plain(name)} against {task_id} (release {latest.release}): every test id once, labels "
          f"from the {len(key.classes)} classes: valid")
    if warning:
        print(f"note: {warning}")
    got = submit_file(submissions, me.team, task_id, CheckedFile(name, data, args.message), {u.name for u in mine.uploads})
    renamed = f" (as {plain(got.key.rsplit('/', 1)[-1])}: {plain(got.renamed_from)} exists)" if got.renamed_from else ""

    print(f"received: {plain(got.where, 400)}{renamed}, {got.bytes} bytes, at {utc_minute(got.uploaded_at.isoformat())}")
    if left is not None:
        print(f"quota: at most {left - 1} of {limit} scored submissions left today for {task_id} after this one "
              "(resets at 00:00 UTC; invalid files do not count)")
    print(f"{_next_run(info)}; `challenge submissions --task {task_id} --wait` shows the score")
    return 0


def _print_task(task: "TaskSubmissions", limit: int | None, now: datetime) -> None:

    print(f"{task.task_id}")
    if not task.uploads:
        print("  no uploads yet")
    for u in task.uploads:
        score = f"{u.public_score:.4f}" if u.public_score is not None else "–"
        marks = " ".join(m for m, on in (("[final pick]", u.final_pick), ("[on the board]", u.counts_on_leaderboard)) if on)
        said = u.message if u.status not in ("scored", "pending") else ""
        note = " ".join(x for x in (f'"{u.description}"' if u.description else "", marks, said) if x)
        print(f"  {utc_minute(u.uploaded_at.isoformat())}  {plain(u.name, 40):30} {plain(u.status, 20):17} {score:>8}  {plain(note, 300)}")
    left = task.left_today(limit, now)
    if left is not None:
        print(f"  quota today: {left} of {task.quota.get('limit', limit) if task.quota else limit} left "
              "(resets at 00:00 UTC; uploads still waiting counted)")
    if task.final_names:
        verdict = f"{task.final['status']}" + (f": {task.final.get('message')}" if task.final.get("message") else "") \
            if task.final else "not checked yet"
        print(f"  FINAL: {plain(', '.join(task.final_names))} ({plain(verdict, 300)})")


def cmd_submissions(args: argparse.Namespace) -> int:
    from challenge.tasks.participant.tools import my_submissions, release_task_ids
    from challenge.tasks.release.challenge_info import read_challenge_info
    from challenge.tasks.release.latest import current_release

    me, public, submissions = _stores(args)
    latest = current_release(public)
    chosen = release_task_ids(latest, args.task)
    deadline = time.monotonic() + args.timeout * 60
    announced = False
    while True:
        found = my_submissions(submissions, me.team, chosen)
        pending = [u for t in found.values() for u in t.pending()]
        if not args.wait or not pending:
            break
        info = read_challenge_info(public)
        if not announced:
            print(f"waiting for {len(pending)} upload(s) to be scored; {_next_run(info)}", flush=True)
            announced = True
        if time.monotonic() > deadline:
            print(f"still waiting after {args.timeout:g} min: {', '.join(plain(u.name) for u in pending)}; scoring may be "
                  "paused, ask the organizers", file=sys.stderr)
            return 1
        time.sleep(args.poll)
    info = read_challenge_info(public)
    now = datetime.now(timezone.utc)
    print(f"team {me.team} · release {latest.release}")
    for task_id in chosen:
        _print_task(found[task_id], info.max_submissions_per_day if info else None, now)
    return 0


def add_participant_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register download, submit and submissions on the main parser's subcommands."""
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--participant", metavar="FILE",
                     help="participant.yaml (default: $CHALLENGE_PARTICIPANT, else ./participant.yaml)")

    download = sub.add_parser("download", parents=[common, who], help="participant: download the latest release, verified")
    download.add_argument("--task", action="append", metavar="ID", help="only this task (repeatable)")
    download.add_argument("--to", default=DEFAULT_FOLDER, metavar="DIR",
                          help=f"into DIR/<release>/<task>/ (default: {DEFAULT_FOLDER})")
    download.set_defaults(func=guarded(cmd_download))

    submit = sub.add_parser("submit", parents=[common, who],
                            help="participant: check a file with the scorer's checks, then upload it")
    submit.add_argument("file", help="a CSV or Parquet file with columns id,label")
    submit.add_argument("--task", required=True, metavar="ID")
    submit.add_argument("--message", metavar="TEXT",
                        help="a note on this submission, kept with its result and shown on your leaderboard row")
    submit.add_argument("--name", help="the upload's name (default: the file's name; -2, -3, ... when it exists)")
    submit.set_defaults(func=guarded(cmd_submit))

    check = sub.add_parser("algorithm-check", parents=[common],
                           help="participant: run an algorithm (folder or .zip with main.py) on a downloaded task in "
                                "the scorer's sandbox and check its predictions")
    check.add_argument("algorithm", metavar="DIR_OR_ZIP")
    check.add_argument("--task", required=True, metavar="ID_OR_FOLDER",
                       help="a task id downloaded under --data, or a task folder")
    check.add_argument("--data", default=DEFAULT_FOLDER, metavar="DIR", help=f"where downloads are (default: {DEFAULT_FOLDER})")
    check.add_argument("--verbose", action="store_true", help="show the end of its stderr also when it is valid")
    check.set_defaults(func=cmd_algorithm_check)

    mine = sub.add_parser("submissions", parents=[common, who],
                          help="participant: my submissions, their status and scores, quota left, final picks")
    mine.add_argument("--task", action="append", metavar="ID", help="only this task (repeatable)")
    mine.add_argument("--wait", action="store_true", help="wait until every upload has been answered by the scorer")
    mine.add_argument("--timeout", type=float, default=30, metavar="MINUTES", help="how long --wait waits (default 30)")
    mine.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    mine.set_defaults(func=guarded(cmd_submissions))
