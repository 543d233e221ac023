"""What `<public>/latest.json` says: the current release and its tasks (written last by a publish)."""

from __future__ import annotations

from dataclasses import dataclass

from challenge.core import catalog
from challenge.core.catalog import AnswerVersions, Latest, Manifest
from challenge.core.errors import ChallengeError
from challenge.core.logs import step_logger
from challenge.core.storage import Storage

log = step_logger(__name__)


def _marker(public: Storage, key: str) -> Latest | None:
    """A release marker, or None when it is unreadable or not one."""
    try:
        return catalog.read_record(public, key, Latest)
    except ChallengeError:
        return None


def complete_releases(public: Storage) -> list[Latest]:
    """Every release whose marker (written when it was complete) is readable, oldest first."""
    keys = [i.key for i in public.list(f"{catalog.RELEASES}/") if catalog.is_release_marker_key(i.key)]
    markers = [m for m in (_marker(public, k) for k in keys) if m is not None]
    return sorted(markers, key=lambda m: (str(m.published_at or ""), m.release))


def read_latest(public: Storage) -> Latest | None:
    """The release marker latest.json points at (release, published_at, tasks); None before the first release.

    latest.json is a pointer: when it is damaged, it is rebuilt from the newest complete release's marker
    (and rewritten); when it is missing although releases exist, that is an error naming the fix.
    """
    if not public.exists(catalog.LATEST):
        releases = complete_releases(public)
        if not releases:
            return None
        newest = releases[-1].release
        raise ChallengeError(
            f"{public.uri_for(catalog.LATEST)} is missing, but {len(releases)} release(s) exist (newest: {newest}): "
            f"copy {public.uri_for(catalog.release_marker_key(newest))} to {public.uri_for(catalog.LATEST)} to make it "
            f"current again (participants read {catalog.LATEST})")
    latest = _marker(public, catalog.LATEST)
    if latest is not None:
        return latest
    releases = complete_releases(public)
    if not releases:
        raise ChallengeError(f"{public.uri_for(catalog.LATEST)} is damaged and no complete release marker exists "
                             f"under {public.uri_for(catalog.RELEASES)}: publish a release")
    log.warning("%s is damaged; rebuilt from the marker of release %s", public.uri_for(catalog.LATEST), releases[-1].release)
    catalog.write_record(public, catalog.LATEST, releases[-1])
    return releases[-1]


def current_release(public: Storage) -> Latest:
    """Like read_latest, but no release yet is an error saying what to do."""
    latest = read_latest(public)
    if latest is None:
        raise ChallengeError(f"no release yet: {public.uri_for(catalog.LATEST)} is missing; run `challenge publish` first")
    return latest


@dataclass(frozen=True)
class ReleasedTask:
    """What boards and scoring need to know of one task of a release (from its manifest)."""

    task_id: str
    kind: str
    metric: str
    title: str
    card: str  # key of the dataset card under public
    answers_sha256: str | None = None  # the answer key in use: results must have been scored with it to count
    changed_in: str | None = None  # the release in which the task's files last changed
    answer_version: int = 1  # 1: as built; higher: corrected with `challenge correct-answers`
    earlier_keys: tuple[str, ...] = ()  # SHA-256 of the key's earlier versions: their results are rescored

    @classmethod
    def from_manifest(cls, manifest: Manifest, task_id: str, release: str,
                      versions: AnswerVersions | None = None) -> "ReleasedTask":
        last = versions.versions[-1] if versions and versions.versions else None
        return cls(task_id, manifest.kind, manifest.metric, manifest.title or task_id, catalog.card_key(release, task_id),
                   last.answers_sha256 if last else manifest.answers_sha256, manifest.release,
                   last.version if last else 1,
                   tuple(v.answers_sha256 for v in versions.versions[:-1]) if versions else ())


def read_answer_versions(private: Storage, release: str, task_id: str) -> AnswerVersions | None:
    """The corrected versions of a task's answer key in `release` (None: never corrected, version 1 in use)."""
    key = catalog.answer_versions_key(release, task_id)
    return catalog.read_record(private, key, AnswerVersions) if private.exists(key) else None


def release_tasks(public: Storage, latest: Latest, private: Storage | None = None) -> dict[str, ReleasedTask]:
    """task id → kind, metric, title and card of every task of the release `latest` names (from its manifests);
    with `private`, the answer key in use is the last corrected version, when there is one."""
    return {task_id: ReleasedTask.from_manifest(
                catalog.read_manifest(public, latest.release, task_id), task_id, latest.release,
                read_answer_versions(private, latest.release, task_id) if private is not None else None)
            for task_id in latest.tasks}
