"""How every output shows a score, an interval, a moment and a missing value (the leaderboard page, the
Prefect artifacts, the results report, the terminal)."""

from __future__ import annotations

from datetime import datetime, timezone

MISSING = "–"


def utc_minute(iso: str) -> str:
    """`2026-11-25T14:05:31.2+00:00` → `2026-11-25 14:05 UTC`."""
    moment = datetime.fromisoformat(iso)
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def score_text(value: float) -> str:
    """A score as every board shows it (the page, the Prefect artifacts, the terminal): four decimals."""
    return f"{value:.4f}"


def interval_text(ci: list[float] | tuple[float, float]) -> str:
    """A score's interval as every board shows it: `[low, high]`, three decimals."""
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"
