"""What `<public>/latest.json` says: the current release and its tasks (written last by a publish)."""

from __future__ import annotations

import json
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


def release_tasks(public: Storage, latest: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """task id → (kind, metric) for every task of the release `latest` names (from its manifests)."""
    tasks = {}
    for task_id in latest["tasks"]:
        manifest = json.loads(public.read_bytes(f"releases/{latest['release']}/{task_id}/manifest.json"))
        tasks[task_id] = (manifest["kind"], manifest["metric"])
    return tasks
