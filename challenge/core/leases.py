"""A lease that work checks before it takes more: once its holder cannot renew it, the work stops.

The scoring slot (challenge/core/scoring_slot.py) makes a Lease, renews it from a heartbeat and sets it as the
current one for the block that holds the slot. Prefect's thread task runner copies context variables
into each task run, so a scoring step reads `current()` in its task and checks it before each
submission it takes: a run whose lease lapsed (renewals failing for half the lease, or another run
took the slot over) stops instead of scoring beside the run that now holds the slot. A step in another
process (a Dask worker) sees no current lease; there the result records' conditional writes keep two
runs from both writing one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from challenge.core.errors import ChallengeError


class LeaseLost(ChallengeError):
    """The run's exclusive lease lapsed: it takes no more work."""


class Lease:
    """An exclusive lease of `seconds`, renewed by its holder; lost once unrenewed for half of it, or when told."""

    def __init__(self, what: str, seconds: float):
        self.what, self.seconds = what, seconds
        self.renewed = time.monotonic()
        self.lost: str | None = None

    def renew(self) -> None:
        self.renewed = time.monotonic()

    def lose(self, why: str) -> None:
        self.lost = self.lost or why

    def problem(self) -> str | None:
        """Why the lease no longer holds, else None."""
        if self.lost:
            return self.lost
        unrenewed = time.monotonic() - self.renewed
        if unrenewed > self.seconds / 2:
            return f"not renewed for {unrenewed:.0f} s of its {self.seconds:g} s lease"
        return None

    def check(self) -> None:
        """LeaseLost when the lease no longer holds."""
        problem = self.problem()
        if problem:
            raise LeaseLost(f"{self.what} was lost ({problem}): this run stopped taking new work; what it wrote is "
                            "kept, and the next run does the rest")


_current: ContextVar[Lease | None] = ContextVar("challenge_lease", default=None)


def current() -> Lease | None:
    """The lease of the block running now (copied into Prefect's thread task runs), if any."""
    return _current.get()


@contextmanager
def holding(lease: Lease) -> Iterator[Lease]:
    """Make `lease` the current one for the block."""
    token = _current.set(lease)
    try:
        yield lease
    finally:
        _current.reset(token)
