"""One scoring run per challenge at a time, and a slot that a killed run cannot keep.

The scoring and finalize flows hold the one-slot Prefect global concurrency
limit `challenge-<name>-scoring`. Prefect renews a lease on the slot while the
run lives, but its lease storage lives in the API server's memory, and the
temporary server of the CLI (no PREFECT_API_URL) neither keeps nor revokes
leases: a run killed with SIGKILL left the slot taken, and every later run
waited forever, silently.

So the holder also keeps a note in `<private>/locks/scoring-slot.json`,
renewed every stale_seconds()/4 while it runs. A run that finds the slot
taken waits, saying so in its log; when the note has not been renewed for
stale_seconds() (its holder is dead), or there is no note at all for that
long, it frees the slot and takes it. A run that cannot get the slot within
wait_seconds() ends with an error that says why and what to do.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_run_logger

from challenge import catalog
from challenge.config import ChallengeConfig
from challenge.errors import ChallengeError
from challenge.storage import Storage, open_location


def stale_seconds() -> float:
    """A holder whose note is older than this is dead ($CHALLENGE_SCORING_STALE_SECONDS; default 420 s,
    longer than Prefect's 300 s lease, which a full Prefect server revokes first)."""
    return float(os.environ.get("CHALLENGE_SCORING_STALE_SECONDS", "420"))


def wait_seconds() -> float:
    """How long a run waits for the slot before it gives up ($CHALLENGE_SCORING_WAIT_SECONDS)."""
    return float(os.environ.get("CHALLENGE_SCORING_WAIT_SECONDS", str(2 * stale_seconds())))


def scoring_limit_name(config: ChallengeConfig) -> str:
    return f"challenge-{config.name}-scoring"


def ensure_scoring_limit(config: ChallengeConfig) -> str:
    """Create the one-slot limit if it is not there yet (and undo any slot decay: it would make a waiting
    run back off for as long as the decay takes)."""
    name = scoring_limit_name(config)
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run created it just now
                pass
            return name
        if limit.slot_decay_per_second or limit.limit != 1:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, slot_decay_per_second=0))
    return name


def _read_note(private: Storage) -> dict[str, Any] | None:
    try:
        note = json.loads(private.read_bytes(catalog.SCORING_SLOT_NOTE))
    except Exception:  # noqa: BLE001 (no note, or a damaged one: nothing says a holder is alive)
        return None
    return note if isinstance(note, dict) and isinstance(note.get("renewed_at"), (int, float)) else None


class _Heartbeat:
    """Renews the holder's note in a background thread until stopped."""

    def __init__(self, private: Storage, interval: float):
        self.private, self.interval, self.stop_event = private, interval, threading.Event()
        self.note = {"holder": f"{socket.gethostname()}:{os.getpid()}",
                     "since": datetime.now(timezone.utc).isoformat(), "renewed_at": time.time()}
        self.thread = threading.Thread(target=self._run, name="scoring-slot-heartbeat", daemon=True)

    def _write(self) -> None:
        self.note["renewed_at"] = time.time()
        self.private.write_bytes(catalog.SCORING_SLOT_NOTE, json.dumps(self.note).encode())

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self._write()
            except Exception:  # noqa: BLE001 (storage away for a moment: the next beat tries again)
                pass

    def __enter__(self) -> "_Heartbeat":
        self._write()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()
        try:
            self.private.delete(catalog.SCORING_SLOT_NOTE)
        except Exception:  # noqa: BLE001 (a note left behind goes stale and is ignored)
            pass


@contextmanager
def scoring_slot(config: ChallengeConfig) -> Iterator[None]:
    """Hold the challenge's scoring slot for the block; free a dead holder's slot; or fail saying why."""
    name, private, logger = ensure_scoring_limit(config), open_location(config, "private"), get_run_logger()
    stale, started = stale_seconds(), time.time()
    poll = max(1.0, min(30.0, stale / 4))
    unknown_since: float | None = None  # when the slot was first seen taken with no live note
    said = False
    while True:
        try:
            left = wait_seconds() - (time.time() - started)
            with concurrency(name, occupy=1, strict=True, timeout_seconds=max(0.5, min(poll, left))):
                with _Heartbeat(private, max(0.2, stale / 4)):
                    yield
                return
        except TimeoutError:
            pass
        note = _read_note(private)
        if note is not None and time.time() - note["renewed_at"] < stale:
            unknown_since = None  # a live holder: wait for it
        else:
            unknown_since = unknown_since or time.time()
            if time.time() - unknown_since >= stale or (note is not None and time.time() - note["renewed_at"] >= stale):
                who = f"{note['holder']}, last seen {time.time() - note['renewed_at']:.0f} s ago" if note else "no holder note"
                logger.warning("the scoring slot %s is held by a run that is gone (%s): freeing it", name, who)
                with get_client(sync_client=True) as client:
                    client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
                try:
                    private.delete(catalog.SCORING_SLOT_NOTE)
                except Exception:  # noqa: BLE001
                    pass
                unknown_since = None
                continue
        if time.time() - started >= wait_seconds():
            raise ChallengeError(
                f"the scoring slot {name} stayed taken for {time.time() - started:.0f} s: another scoring or finalize run "
                f"of {config.name} is still running. Nothing was scored by this run; the next scheduled run will try "
                f"again. If no run is active, free the slot under Concurrency in the Prefect UI, or with "
                f"`prefect gcl update {name} --active-slots 0`")
        if not said:
            logger.warning("waiting for the scoring slot %s: another scoring or finalize run holds it; a run that "
                           "stopped is detected within %.0f s", name, stale)
            said = True
