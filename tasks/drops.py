"""Contributors' drops under `intake`: one `<contributor>/<task_id>/` folder each, found by one listing,
fingerprinted by content and rules, and what happened to each in a run."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from challenge import catalog
from challenge.storage import ObjectInfo, Storage, is_valid_key
from challenge.task_spec import TASK_ID_PATTERN

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


def task_id_clashes(drops: list[Drop]) -> dict[str, list[str]]:
    """Folder (task_id) → contributors, for task ids claimed by more than one contributor."""
    owners: dict[str, list[str]] = defaultdict(list)
    for drop in drops:
        owners[drop.folder].append(drop.contributor)
    return {task: names for task, names in owners.items() if len(names) > 1}


def run_time_label(moment: datetime | None = None) -> str:
    """UTC time as used in report folder names: 2026-11-25T14-01-00Z."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H-%M-%S") + f".{moment.microsecond // 1000:03d}Z"


def report_folder(task_id: str) -> str:
    """The reports folder of a task id (a hashed name when the id is not a valid task id)."""
    return task_id if re.match(TASK_ID_PATTERN, task_id) else "_invalid-" + hashlib.sha1(task_id.encode()).hexdigest()[:8]

