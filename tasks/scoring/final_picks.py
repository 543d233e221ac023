"""A team's final picks for a task: its `<team>/<task_id>/FINAL` file, read, checked and answered.

FINAL holds the file names of up to `policy.final_picks` (default 2, Kaggle's
habit) of the team's scored submissions to that task, one per line (e.g.
`good.csv`); after finalize the best private score among them ranks the team.
A FINAL that names nothing valid is not silently ignored: the team gets
`FINAL.result.json` saying why, and its best public submission counts instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from challenge.core import catalog
from challenge.core.records import FinalAnswer, ResultRecord
from challenge.core.sniff import TEXT_KINDS, binary_kind
from challenge.core.storage import TRANSFER_THREADS, ObjectInfo, Storage
from challenge.tasks.release.latest import ReleasedTask
from challenge.tasks.scoring.score import counts_for
from challenge.tasks.scoring.submissions import Inbox

FINAL_MAX_BYTES = 1024
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")  # in a name: a mistake


@dataclass(frozen=True)
class FinalFile:
    """What one FINAL file says: the submission names it holds, or why it holds none."""

    team: str
    task_id: str
    key: str
    names: tuple[str, ...] = ()
    problem: str | None = None


def read_final(submissions: Storage, info: ObjectInfo, team: str, task_id: str, picks: int = 2) -> FinalFile:
    """Read a FINAL file (at most FINAL_MAX_BYTES, else refused unread): up to `picks` names, one per line."""
    what = f"the file names of up to {picks} scored submissions, one per line"
    if info.size > FINAL_MAX_BYTES:
        return FinalFile(team, task_id, info.key, (), f"FINAL is {info.size} bytes; it must hold only {what}")
    data = submissions.read_limited(info.key, FINAL_MAX_BYTES)
    if len(data) > FINAL_MAX_BYTES:  # replaced by a larger file since the listing
        return FinalFile(team, task_id, info.key, (), f"FINAL is larger than {FINAL_MAX_BYTES} bytes; it must hold only {what}")
    kind = binary_kind(data)
    if kind is not None:
        fix = "save it as UTF-8 plain text" if kind in TEXT_KINDS else "write it as plain text"
        return FinalFile(team, task_id, info.key, (), f"FINAL is {kind}; {fix}, holding {what}")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Notepad writes one) is not part of the first name
    except UnicodeDecodeError:
        return FinalFile(team, task_id, info.key, (), f"FINAL is not UTF-8 text; save it as UTF-8 plain text holding {what}")
    names = list(dict.fromkeys(line.strip().removeprefix(catalog.task_folder(team, task_id) + "/")
                               for line in text.splitlines() if line.strip()))
    if not names:
        return FinalFile(team, task_id, info.key, (), f"FINAL is empty; write {what}")
    if len(names) > picks:
        return FinalFile(team, task_id, info.key, (), f"FINAL names {len(names)} submissions; the limit is {picks}: "
                         f"write {what}")
    nested = [n for n in names if "/" in n]
    if nested:
        return FinalFile(team, task_id, info.key, (),
                         f"FINAL names '{nested[0][:100]}', which is not a file in {team}/{task_id}/; write file names only")
    return FinalFile(team, task_id, info.key, tuple(names))


def _shown_name(name: str) -> str:
    """A name FINAL holds, quoted, its invisible characters written out (U+200B), so the team sees why it matches
    no file."""
    hidden = sorted({f"U+{ord(c):04X}" for c in _INVISIBLE.findall(name)})
    if not hidden:
        return f"'{name[:100]}'"
    spelled = _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", name[:100])
    return f"'{spelled}' (with the invisible character(s) {', '.join(hidden)}: delete them)"


def check_final(final: FinalFile, records: list[ResultRecord], metric: str | None) -> tuple[list[ResultRecord], str]:
    """The scored records FINAL picks (for each name, its latest scored upload) and a message for the team.

    `records`: the team's result records for the task that count on the current board. Every name must
    be a scored submission, else none is accepted (a half-valid FINAL is not guessed at).
    """
    fallback = "until it does, your best public submission counts for the final ranking"
    if final.problem:
        return [], f"{final.problem}; {fallback}"
    chosen, lines = [], []
    for name in final.names:
        named = [r for r in records if r["name"] == name]
        scored = [r for r in named if r["status"] == "scored"]
        if scored:
            pick = max(scored, key=lambda r: r["uploaded_at"])
            score = pick["metrics"].get("public", {}).get(metric) if metric else None
            lines.append(f"{name} (scored" + (f", public {metric} {score:.4f})" if isinstance(score, (int, float)) else ")"))
            chosen.append(pick)
        elif named:
            last = max(named, key=lambda r: r["uploaded_at"])
            return [], (f"FINAL names {name}, which was not scored ({last['status']}: {last['message'][:200]}); "
                        f"name scored submissions only; {fallback}")
        else:
            return [], (f"FINAL names {_shown_name(name)}, which is not a submission of {final.team} to {final.task_id} "
                        f"scored against the current data; write the file names of your scored submissions; {fallback}")
    return chosen, (f"FINAL picks {', '.join(lines)}: the best private score among "
                    f"{'them' if len(chosen) > 1 else 'it'} counts for the final ranking")


def final_feedback(final: FinalFile, chosen: list[ResultRecord], message: str) -> FinalAnswer:
    return {"final": final.key, "names": list(final.names), "status": "accepted" if chosen else "not accepted",
            "submissions": [r["key"] for r in chosen], "message": message}


def write_final_feedback(submissions: Storage, private: Storage, answers: list[tuple[FinalFile, FinalAnswer]],
                         existing: set[str]) -> int:
    """`<team>/<task_id>/FINAL.result.json` for each FINAL whose answer changed since it was last written
    (or whose feedback file is not among the `existing` keys)."""
    written = catalog.read_cache(private, catalog.FINAL_FEEDBACK_CACHE)
    changed = 0
    for final, body in answers:
        key = catalog.feedback_key(final.key)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if written.get(key) == digest and key in existing:
            continue
        stamped = {**body, "checked_at": datetime.now(timezone.utc).isoformat()}
        catalog.write_json(submissions, key, stamped)
        written[key] = digest
        changed += 1
    if changed:
        catalog.write_json(private, catalog.FINAL_FEEDBACK_CACHE, written, indent=1)
    return changed


def answer_final_choices(submissions: Storage, private: Storage, inbox: Inbox, records: list[ResultRecord],
                         tasks: dict[str, ReleasedTask], picks: int = 2) -> dict[tuple[str, str], list[str]]:
    """Read every FINAL file, write its feedback when the answer changed; returns (team, task) → the
    submission ids each valid FINAL picks (among the results that count on the task's current board)."""
    current: dict[tuple[str, str], list[ResultRecord]] = {}
    for r in records:
        task = tasks.get(r["task_id"])
        if task is not None and counts_for(r, task):
            current.setdefault((r["team"], r["task_id"]), []).append(r)
    items = sorted(inbox.final_choices.items())
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        finals = list(pool.map(lambda item: read_final(submissions, item[1], *item[0], picks=picks), items))
    choices, answers = {}, []
    for final in finals:
        task = tasks.get(final.task_id)
        chosen, message = check_final(final, current.get((final.team, final.task_id), []), task.metric if task else None)
        if chosen:
            choices[(final.team, final.task_id)] = [r["submission_id"] for r in chosen]
        answers.append((final, final_feedback(final, chosen, message)))
    write_final_feedback(submissions, private, answers, inbox.feedback)
    return choices
