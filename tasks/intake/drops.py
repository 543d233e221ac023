"""Contributors' drops under `intake`: one `<contributor>/<task_id>/` folder each, found by one listing,
fingerprinted by content and rules, and what happened to each in a run."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from challenge.core import catalog
from challenge.core.storage import ObjectInfo, Storage, is_valid_key
from challenge.core.task_spec import TASK_ID_PATTERN

PIPELINE_VERSION = "intake-1"  # bump when standardization changes the staged output


@dataclass(frozen=True)
class Drop:
    """One `<contributor>/<task_id>/` folder under intake."""

    contributor: str
    folder: str
    files: tuple[ObjectInfo, ...]

    @property
    def prefix(self) -> str:
        return catalog.drop_prefix(self.contributor, self.folder)

    @property
    def name(self) -> str:
        return self.prefix.rstrip("/")

    def relative(self, info: ObjectInfo) -> str:
        return info.key[len(self.prefix):]

    def fingerprint(self, rules: str) -> str:
        """Content hash of the drop (each file's key, size and content version) and of the rules."""
        digest = hashlib.sha256(f"{PIPELINE_VERSION}\n{rules}\n".encode())
        for info in sorted(self.files, key=lambda i: i.key):
            digest.update(f"{self.relative(info)}\t{info.size}\t{info.version}\n".encode())
        return digest.hexdigest()


@dataclass
class DropOutcome:
    """What happened to one drop in one run."""

    drop: str
    task_id: str
    verdict: str  # pass | fail
    status: str  # gated | unchanged
    report: str
    staged: str | None = None
    failures: list[str] = field(default_factory=list)
    owner: str | None = None  # who owned the task id when the drop was gated

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def discover_drops(intake: Storage, only: set[str] | None = None) -> tuple[list[Drop], list[str]]:
    """Group intake objects by `<contributor>/<folder>/`; also return stray keys outside any drop."""
    grouped: dict[tuple[str, str], list[ObjectInfo]] = defaultdict(list)
    stray = []
    for info in intake.list(""):
        parts = info.key.split("/")
        if len(parts) < 3 or not is_valid_key(f"{parts[0]}/{parts[1]}"):
            stray.append(info.key)
            continue
        if not is_valid_key(info.key):  # e.g. team/task//x.csv on S3: refused by the gate, never read
            info = replace(info, problem=f"an object key that cannot be used ({info.key!r})")
        if only and parts[1] not in only:
            continue
        grouped[(parts[0], parts[1])].append(info)
    drops = [Drop(c, f, tuple(files)) for (c, f), files in sorted(grouped.items())]
    return drops, stray


@dataclass(frozen=True)
class Claimant:
    """A contributor dropping a task id, and when: the time of its drop's oldest file (ISO, UTC)."""

    contributor: str
    dropped_at: str


def dropped_at(drop: Drop) -> str:
    """When a drop was made: the time of its oldest file (an update keeps it; dropping it anew does not)."""
    times = [info.modified.astimezone(timezone.utc) for info in drop.files]
    return min(times).isoformat() if times else datetime.max.replace(tzinfo=timezone.utc).isoformat()


def task_id_clashes(drops: list[Drop]) -> dict[str, list[Claimant]]:
    """Folder (task_id) → the contributors dropping it, earliest drop first (ties by name), for task ids
    dropped by more than one contributor. Before the task is staged, the first of them owns it."""
    claims: dict[str, list[Claimant]] = defaultdict(list)
    for drop in drops:
        claims[drop.folder].append(Claimant(drop.contributor, dropped_at(drop)))
    return {task: sorted(found, key=lambda c: (c.dropped_at, c.contributor))
            for task, found in claims.items() if len(found) > 1}


@dataclass(frozen=True)
class Ownership:
    """Who owns a task id when a drop of it is gated, and why (one of the reasons below)."""

    owner: str
    reason: str
    rivals: tuple[str, ...] = ()  # the other contributors dropping it in this run
    since: str = ""  # reason FIRST: when the owner's drop was made

    ASSIGNED = "assigned"  # by the organizers: challenge.yaml's owners
    STAGED = "staged"  # the contributor whose drop was staged first
    FIRST = "first"  # nothing staged yet: the earliest of this run's drops (ties by name)
    ALONE = "alone"  # nothing staged, no other drop

    def why(self, task_id: str) -> str:
        if self.reason == self.ASSIGNED:
            return f"task id '{task_id}' is assigned to contributor '{self.owner}' by the organizers (owners: in challenge.yaml)"
        if self.reason == self.STAGED:
            return f"task id '{task_id}' belongs to contributor '{self.owner}', who staged it first"
        return (f"task id '{task_id}' is claimed by contributor '{self.owner}', whose drop came first (its files date "
                f"from {self.since[:19].replace('T', ' ')} UTC; nothing is staged yet)")

    def to_owner(self, task_id: str) -> str:
        """What the owner's drop is told when others drop its task id too."""
        how = {self.ASSIGNED: "the organizers assigned it to you", self.STAGED: "you staged it first"}.get(
            self.reason, "your drop came first")
        return f"contributor(s) {', '.join(self.rivals)} also dropped task id '{task_id}'; it is yours ({how}): their drops fail"

    def refusal(self, task_id: str) -> str:
        """Why another contributor's drop of `task_id` fails, and what to do."""
        ask = ("ask the organizers to reassign it" if self.reason == self.ASSIGNED
               else "ask the organizers to assign it to you (owners: in challenge.yaml)")
        return f"{self.why(task_id)}; choose another task id (rename the folder and task_id), or {ask}"


def task_owner(task_id: str, contributor: str, assigned: dict[str, str], staged_by: str | None,
               claims: list[Claimant] | None) -> Ownership:
    """The owner of `task_id` as the gate of `contributor`'s drop sees it: the organizers' assignment, else the
    contributor whose drop was staged first, else the earliest drop of this run (ties by name)."""
    claims = claims or [Claimant(contributor, "")]
    rivals = tuple(c.contributor for c in claims if c.contributor != contributor)
    if task_id in assigned:
        return Ownership(assigned[task_id], Ownership.ASSIGNED, rivals)
    if staged_by:
        return Ownership(staged_by, Ownership.STAGED, rivals)
    return Ownership(claims[0].contributor, Ownership.FIRST if rivals else Ownership.ALONE, rivals, claims[0].dropped_at)


def run_time_label(moment: datetime | None = None) -> str:
    """UTC time as used in report folder names: 2026-11-25T14-01-00Z."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H-%M-%S") + f".{moment.microsecond // 1000:03d}Z"


def report_folder(task_id: str) -> str:
    """The reports folder of a task id (a hashed name when the id is not a valid task id)."""
    return task_id if re.match(TASK_ID_PATTERN, task_id) else "_invalid-" + hashlib.sha1(task_id.encode()).hexdigest()[:8]


def contributor_folder(contributor: str) -> str:
    """A contributor's reports folder inside a task's: its name, or a hashed one when the name has a dot
    or other characters (it can then never equal a run folder, 2026-…Z with a dot, or latest-<name>.json)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", contributor):
        return contributor
    return "_contributor-" + hashlib.sha1(contributor.encode()).hexdigest()[:12]

