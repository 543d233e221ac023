"""`<public>/challenge.json`: the rules as they are now, and when scoring runs next.

Participants' tools read it (`challenge submit` says how many submissions are left today and when the
next scoring run is due; it refuses a file before the opening or after the close). Every publish and
every scoring run rewrites it from challenge.yaml, so it is never older than the last run.
"""

from __future__ import annotations

from datetime import datetime, timezone

from challenge.core import catalog
from challenge.core.catalog import ChallengeInfo, ScoringSchedule
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def challenge_info(config: ChallengeConfig, schedule: ScoringSchedule, finalized: datetime | None,
                   now: datetime | None = None) -> ChallengeInfo:
    """What challenge.json says (a step: no storage)."""
    policy = config.policy
    return ChallengeInfo(
        schema_version=1, challenge=config.name, title=config.title,
        max_submissions_per_day=policy.max_submissions_per_day, max_submission_mb=policy.max_submission_mb,
        opens_at=_iso(policy.opens_at), closes_at=_iso(policy.closes_at), finalized_at=_iso(finalized),
        after_close=policy.after_close, public_fraction=policy.public_fraction, final_picks=policy.final_picks,
        scoring=schedule, updated_at=_iso(now or datetime.now(timezone.utc)))


def read_challenge_info(public: Storage) -> ChallengeInfo | None:
    """challenge.json, or None when no publish or scoring run has written it yet (or it is damaged)."""
    if not public.exists(catalog.CHALLENGE_INFO):
        return None
    try:
        return catalog.read_record(public, catalog.CHALLENGE_INFO, ChallengeInfo)
    except ChallengeError:
        return None


def refresh_challenge_info(public: Storage, config: ChallengeConfig, finalized: datetime | None,
                           schedule: ScoringSchedule | None = None) -> ChallengeInfo:
    """Rewrite challenge.json from challenge.yaml; without a `schedule` (a publish), the last scoring
    run's is kept."""
    if schedule is None:
        earlier = read_challenge_info(public)
        schedule = earlier.scoring if earlier is not None else ScoringSchedule()
    info = challenge_info(config, schedule, finalized)
    catalog.write_record(public, catalog.CHALLENGE_INFO, info)
    return info
