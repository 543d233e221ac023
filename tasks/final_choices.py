"""A team's final pick for a task: its `<team>/<task_id>/FINAL` file, read, checked and answered.

FINAL holds the file name of one of the team's scored submissions to that task
(e.g. `good.csv`); after finalize that submission's private score ranks the
team. A FINAL that names nothing valid is not silently ignored: the team gets
`FINAL.result.json` saying why, and its best public submission counts instead.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from challenge import catalog
from challenge.storage import TRANSFER_THREADS, ObjectInfo, Storage
from challenge.tasks.releases import ReleasedTask
from challenge.tasks.submissions import Inbox

FINAL_MAX_BYTES = 1024


@dataclass(frozen=True)
class FinalFile:
    """What one FINAL file says: the submission name it holds, or why it holds none."""

    team: str
    task_id: str
    key: str
    name: str | None
    problem: str | None = None


def read_final(submissions: Storage, info: ObjectInfo, team: str, task_id: str) -> FinalFile:
    """Read a FINAL file (at most FINAL_MAX_BYTES, else refused unread)."""
    if info.size > FINAL_MAX_BYTES:
        return FinalFile(team, task_id, info.key, None,
                         f"FINAL is {info.size} bytes; it must hold only the file name of one scored submission")
    data = submissions.read_limited(info.key, FINAL_MAX_BYTES)
    if len(data) > FINAL_MAX_BYTES:  # replaced by a larger file since the listing
        return FinalFile(team, task_id, info.key, None,
                         f"FINAL is larger than {FINAL_MAX_BYTES} bytes; it must hold only the file name of one scored submission")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return FinalFile(team, task_id, info.key, None, "FINAL is not UTF-8 text; write the file name in plain text")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        return FinalFile(team, task_id, info.key, None, "FINAL is empty; write the file name of one scored submission")
    if len(names) > 1:
        return FinalFile(team, task_id, info.key, None,
                         f"FINAL holds {len(names)} lines; write the file name of one scored submission only")
    name = names[0].removeprefix(catalog.task_folder(team, task_id) + "/")
    if "/" in name:
        return FinalFile(team, task_id, info.key, None,
                         f"FINAL names '{name[:100]}', which is not a file in {team}/{task_id}/; write the file name only")
    return FinalFile(team, task_id, info.key, name)


def check_final(final: FinalFile, records: list[dict[str, Any]], metric: str | None) -> tuple[dict[str, Any] | None, str]:
    """The scored record FINAL picks (the latest upload of that name) and a message for the team.

    `records`: the team's result records for the task in the current release.
    """
    fallback = "until it does, your best public submission counts for the final ranking"
    if final.problem:
        return None, f"{final.problem}; {fallback}"
    named = [r for r in records if r["name"] == final.name]
    scored = [r for r in named if r["status"] == "scored"]
    if scored:
        chosen = max(scored, key=lambda r: r["uploaded_at"])
        score = chosen["metrics"].get("public", {}).get(metric) if metric else None
        shown = f", public {metric} {score:.4f}" if isinstance(score, (int, float)) else ""
        return chosen, f"FINAL picks {final.name} (scored{shown}): it counts for the final ranking"
    if named:
        last = max(named, key=lambda r: r["uploaded_at"])
        return None, (f"FINAL names {final.name}, which was not scored ({last['status']}: {last['message'][:200]}); "
                      f"name a scored submission; {fallback}")
    return None, (f"FINAL names '{final.name[:100]}', which is not a submission of {final.team} to {final.task_id} "
                  f"in the current release; write the file name of one of your scored submissions; {fallback}")


def final_feedback(final: FinalFile, chosen: dict[str, Any] | None, message: str) -> dict[str, Any]:
    return {"final": final.key, "names": final.name, "status": "accepted" if chosen else "not accepted",
            "submission": chosen["key"] if chosen else None, "message": message}


def write_final_feedback(submissions: Storage, private: Storage, answers: list[tuple[FinalFile, dict[str, Any]]],
                         existing: set[str]) -> int:
    """`<team>/<task_id>/FINAL.result.json` for each FINAL whose answer changed since it was last written
    (or whose feedback file is not among the `existing` keys)."""
    try:
        written = json.loads(private.read_bytes(catalog.FINAL_FEEDBACK_CACHE)) if private.exists(catalog.FINAL_FEEDBACK_CACHE) else {}
    except ValueError:  # a damaged cache costs a rewrite, nothing else
        written = {}
    changed = 0
    for final, body in answers:
        key = catalog.feedback_key(final.key)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if written.get(key) == digest and key in existing:
            continue
        stamped = {**body, "checked_at": datetime.now(timezone.utc).isoformat()}
        submissions.write_bytes(key, json.dumps(stamped, indent=2).encode())
        written[key] = digest
        changed += 1
    if changed:
        private.write_bytes(catalog.FINAL_FEEDBACK_CACHE, json.dumps(written, indent=1).encode())
    return changed


def answer_final_choices(submissions: Storage, private: Storage, inbox: Inbox, records: list[dict[str, Any]],
                         release: str, tasks: dict[str, ReleasedTask]) -> dict[tuple[str, str], str]:
    """Read every FINAL file, write its feedback when the answer changed; returns (team, task) → the
    submission id each valid FINAL picks."""
    current: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("release") == release:
            current.setdefault((r["team"], r["task_id"]), []).append(r)
    items = sorted(inbox.final_choices.items())
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        finals = list(pool.map(lambda item: read_final(submissions, item[1], *item[0]), items))
    choices, answers = {}, []
    for final in finals:
        task = tasks.get(final.task_id)
        chosen, message = check_final(final, current.get((final.team, final.task_id), []), task.metric if task else None)
        if chosen:
            choices[(final.team, final.task_id)] = chosen["submission_id"]
        answers.append((final, final_feedback(final, chosen, message)))
    write_final_feedback(submissions, private, answers, inbox.feedback)
    return choices
