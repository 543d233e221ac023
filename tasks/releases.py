"""What `<public>/latest.json` says: the current release and its tasks (written last by a publish)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from challenge.errors import ChallengeError
from tasks.storage import Storage

LATEST_KEY = "latest.json"


def read_latest(public: Storage) -> dict[str, Any] | None:
    """The release marker latest.json points at (release, published_at, tasks); None before the first release."""
    if not public.exists(LATEST_KEY):
        return None
    return json.loads(public.read_bytes(LATEST_KEY))


def current_release(public: Storage) -> dict[str, Any]:
    """Like read_latest, but no release yet is an error saying what to do."""
    latest = read_latest(public)
    if latest is None:
        raise ChallengeError(f"no release yet: {public.uri_for(LATEST_KEY)} is missing; run `challenge publish` first")
    return latest


@dataclass(frozen=True)
class ReleasedTask:
    """What boards and scoring need to know of one task of a release (from its manifest)."""

    task_id: str
    kind: str
    metric: str
    title: str
    card: str  # key of the dataset card under public

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], release: str) -> "ReleasedTask":
        task_id = manifest["task_id"]
        return cls(task_id, manifest["kind"], manifest["metric"], manifest.get("title") or task_id,
                   card_key(release, task_id))


def card_key(release: str, task_id: str) -> str:
    return f"releases/{release}/{task_id}/README.md"


def release_tasks(public: Storage, latest: dict[str, Any]) -> dict[str, ReleasedTask]:
    """task id → kind, metric, title and card of every task of the release `latest` names (from its manifests)."""
    tasks = {}
    for task_id in latest["tasks"]:
        manifest = json.loads(public.read_bytes(f"releases/{latest['release']}/{task_id}/manifest.json"))
        tasks[task_id] = ReleasedTask.from_manifest({**manifest, "task_id": task_id}, latest["release"])
    return tasks
