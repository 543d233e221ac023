"""What `<public>/latest.json` says: the current release and its tasks (written last by a publish)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from challenge.errors import ChallengeError
from challenge.storage import Storage

LATEST_KEY = "latest.json"
COMPLETE_MARKER = "release.json"  # releases/<release>/release.json, written once the release is complete
log = logging.getLogger(__name__)


def _marker(public: Storage, key: str) -> dict[str, Any] | None:
    """A release marker, or None when it is unreadable or not one."""
    try:
        marker = json.loads(public.read_bytes(key))
    except (ValueError, ChallengeError):
        return None
    ok = isinstance(marker, dict) and isinstance(marker.get("release"), str) and isinstance(marker.get("tasks"), list)
    return marker if ok else None


def complete_releases(public: Storage) -> list[dict[str, Any]]:
    """Every release whose marker (written when it was complete) is readable, oldest first."""
    keys = [i.key for i in public.list("releases/") if i.key.count("/") == 2 and i.key.endswith(f"/{COMPLETE_MARKER}")]
    markers = [m for m in (_marker(public, k) for k in keys) if m is not None]
    return sorted(markers, key=lambda m: (str(m.get("published_at", "")), m["release"]))


def read_latest(public: Storage) -> dict[str, Any] | None:
    """The release marker latest.json points at (release, published_at, tasks); None before the first release.

    latest.json is a pointer: when it is damaged, it is rebuilt from the newest complete release's marker
    (and rewritten); when it is missing although releases exist, that is an error naming the fix.
    """
    if not public.exists(LATEST_KEY):
        releases = complete_releases(public)
        if not releases:
            return None
        newest = releases[-1]["release"]
        raise ChallengeError(
            f"{public.uri_for(LATEST_KEY)} is missing, but {len(releases)} release(s) exist (newest: {newest}): "
            f"copy {public.uri_for(f'releases/{newest}/{COMPLETE_MARKER}')} to {public.uri_for(LATEST_KEY)} to make it "
            "current again (participants read latest.json)")
    latest = _marker(public, LATEST_KEY)
    if latest is not None:
        return latest
    releases = complete_releases(public)
    if not releases:
        raise ChallengeError(f"{public.uri_for(LATEST_KEY)} is damaged and no complete release marker exists "
                             f"under {public.uri_for('releases')}: publish a release")
    log.warning("%s is damaged; rebuilt from the marker of release %s", public.uri_for(LATEST_KEY), releases[-1]["release"])
    public.write_bytes(LATEST_KEY, json.dumps(releases[-1], indent=2).encode())
    return releases[-1]


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
