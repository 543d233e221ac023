"""One scoring run per challenge at a time, on a lease: a dead run's slot is free again within a minute.

The scoring, finalize, publish and correct-answers flows hold the one-slot Prefect global concurrency
limit `challenge-<name>-scoring` for their block, on a lease of lease_seconds() (default 60 s). A
heartbeat thread renews it every quarter of the lease, twice: the Prefect lease (the API keeps at
least 60 s) and a note in `<private>/locks/scoring-slot.json` saying who holds it, until when, and
the Prefect lease's id. A note is needed because the temporary Prefect server of the CLI forgets its
leases when it stops: a run killed with SIGKILL would otherwise keep the slot for ever.

A run that finds the slot taken waits, saying so in its log. Once the holder's note has not been
renewed for the holder's lease (its holder is dead), or the slot is taken with no note for a lease,
it frees the slot (revoking the dead holder's Prefect lease, so that it can neither renew nor release
it later) and takes it. A slow run keeps it as long as it lives. A holder whose renewals fail for
half its lease, whose Prefect lease was revoked, or whose note now names another run, has lost the
slot: its lease (challenge/core/leases.py) says so, and the scoring steps take no more submissions. A run
that cannot get the slot within wait_seconds() ends with an error that says why and what to do.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.logging import get_run_logger

from challenge.core import catalog, leases
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError
from challenge.core.records import SlotNote
from challenge.core.run_context import RunContext
from challenge.core.storage import Storage

LEASE_ENV = "CHALLENGE_SCORING_LEASE_SECONDS"
OLD_LEASE_ENV = "CHALLENGE_SCORING_STALE_SECONDS"  # its earlier name, still read
PREFECT_MIN_LEASE = 60.0  # seconds: Prefect's API refuses a shorter lease
HTTP_LOCKED, HTTP_GONE = 423, 410


def lease_seconds() -> float:
    """How long the slot outlives its holder's last renewal ($CHALLENGE_SCORING_LEASE_SECONDS; default 60 s)."""
    return float(os.environ.get(LEASE_ENV) or os.environ.get(OLD_LEASE_ENV) or "60")


def wait_seconds() -> float:
    """How long a run waits for the slot before it gives up ($CHALLENGE_SCORING_WAIT_SECONDS; default 15 min,
    for a slow run to finish)."""
    return float(os.environ.get("CHALLENGE_SCORING_WAIT_SECONDS", "900"))


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


def _read_note(private: Storage) -> SlotNote | None:
    """The holder's note; None when there is none or it is damaged (nothing says a holder is alive)."""
    try:
        note = json.loads(private.read_bytes(catalog.SCORING_SLOT_NOTE))
    except Exception:  # noqa: BLE001
        return None
    return note if isinstance(note, dict) and isinstance(note.get("renewed_at"), (int, float)) else None


def _expires_at(note: SlotNote, lease: float) -> float:
    """When the note's holder is dead: its last renewal plus its own lease (else ours)."""
    held_for = note.get("lease_seconds")
    return note["renewed_at"] + (float(held_for) if isinstance(held_for, (int, float)) and held_for > 0 else lease)


def _holder() -> ConcurrencyLeaseHolder | None:
    """The flow run taking the slot, for Prefect's UI."""
    context = FlowRunContext.get()
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id) if context and context.flow_run else None


def _acquire(name: str, lease: float) -> str | None:
    """The Prefect lease id of the slot, taken now; None when another run holds it."""
    with get_client(sync_client=True) as client:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=max(PREFECT_MIN_LEASE, lease), holder=_holder())
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == HTTP_LOCKED:
                return None
            raise
    return str(response.json()["lease_id"])


def _lease_known(client: Any, lease_id: str) -> bool:
    """Whether Prefect still has the lease (a renewal is the only question its API answers about one)."""
    try:
        client.renew_concurrency_lease(lease_id=uuid.UUID(lease_id), lease_duration=PREFECT_MIN_LEASE)
    except (ValueError, PrefectHTTPStatusError):  # a damaged id; 410: expired, revoked, or its server restarted
        return False
    return True


def _free(name: str, note: SlotNote | None, private: Storage) -> None:
    """Free the slot of a dead holder. Its note goes first (another waiter that reads no note waits a whole
    lease before it frees anything: by then the next holder's note is there). Then its Prefect lease is revoked
    when Prefect still has it (the decrement is done once, and the dead run can never release the slot of the
    run that takes it next); else, when the slot is still counted taken (a temporary server forgot the lease),
    it is set free."""
    again = _read_note(private)
    if again is not None and (note is None or again.get("holder") == note.get("holder")):
        try:
            private.delete(catalog.SCORING_SLOT_NOTE)
        except Exception:  # noqa: BLE001 (a note left behind is stale and ignored)
            pass
    lease_id = note.get("lease_id") if note else None
    with get_client(sync_client=True) as client:
        if isinstance(lease_id, str) and _lease_known(client, lease_id):
            client.release_concurrency_slots_with_lease(uuid.UUID(lease_id))
        elif client.read_global_concurrency_limit_by_name(name).active_slots:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


class _Heartbeat:
    """Renews the slot's Prefect lease and the holder's note every quarter of the lease, in a thread, and
    tells its Lease when the slot is lost."""

    def __init__(self, private: Storage, name: str, lease_id: str, seconds: float, logger: Any):
        self.private, self.name, self.lease_id, self.seconds, self.logger = private, name, lease_id, seconds, logger
        self.lease = leases.Lease(f"the scoring slot {name}", seconds)
        self.stop_event = threading.Event()
        self.note: SlotNote = {"holder": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                     "since": datetime.now(timezone.utc).isoformat(), "renewed_at": time.time(),
                     "lease_seconds": seconds, "lease_id": lease_id}
        context = contextvars.copy_context()  # Prefect's settings (its API) are context variables
        self.thread = threading.Thread(target=context.run, args=(self._run,), name="scoring-slot-heartbeat", daemon=True)

    def _write(self) -> None:
        self.note["renewed_at"] = time.time()
        catalog.write_json(self.private, catalog.SCORING_SLOT_NOTE, self.note)

    def _ours(self) -> bool:
        """Whether the note still names this holder (a storage error is raised: that is not an answer)."""
        if not self.private.exists(catalog.SCORING_SLOT_NOTE):
            return False
        note = json.loads(self.private.read_bytes(catalog.SCORING_SLOT_NOTE))
        return isinstance(note, dict) and note.get("holder") == self.note["holder"]

    def beat(self, client: Any) -> None:
        """One renewal: Prefect's lease, then the note, unless another run holds the slot now."""
        try:
            client.renew_concurrency_lease(lease_id=uuid.UUID(self.lease_id),
                                           lease_duration=max(PREFECT_MIN_LEASE, self.seconds))
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != HTTP_GONE:
                raise
            self.lease.lose("Prefect revoked its lease: another run judged this one dead")
            return
        if not self._ours():
            self.lease.lose("its note in the private location names another run, or was removed: another run "
                            "judged this one dead")
            return
        self._write()
        self.lease.renew()

    def _run(self) -> None:
        with get_client(sync_client=True) as client:
            while not self.stop_event.wait(self.seconds / 4) and not self.lease.lost:
                try:
                    self.beat(client)
                except Exception as exc:  # noqa: BLE001 (storage or Prefect away for a moment: the next beat tries again)
                    problem = self.lease.problem()
                    if problem:
                        self.lease.lose(f"{problem}: {type(exc).__name__}: {str(exc)[:200]}")
                if self.lease.lost:
                    self.logger.error("%s was lost (%s); this run takes no more work", self.lease.what, self.lease.lost)

    def _release(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                client.release_concurrency_slots_with_lease(uuid.UUID(self.lease_id))  # a revoked lease: nothing
        except Exception as error:  # noqa: BLE001
            self.logger.warning("could not release the scoring slot %s (%s); it frees itself %g s after its last "
                                "renewal", self.name, error, self.seconds)

    def __enter__(self) -> "_Heartbeat":
        try:
            self._write()
        except BaseException:  # no note, no holder: the slot is given back at once
            self._release()
            raise
        self.lease.renew()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Release the slot, unless another run took it over (its decrement would free that run's slot)."""
        self.stop_event.set()
        self.thread.join()
        try:
            ours = self._ours()
        except Exception:  # noqa: BLE001 (storage away: nobody took over while the lease held)
            ours = not self.lease.lost
        if not ours:
            return
        self._release()
        try:
            self.private.delete(catalog.SCORING_SLOT_NOTE)
        except Exception:  # noqa: BLE001 (a note left behind goes stale and is ignored)
            pass


@contextmanager
def scoring_slot(run: RunContext) -> Iterator[leases.Lease]:
    """Hold the challenge's scoring slot for the block (its Lease is the current one: see challenge/core/leases.py);
    free a dead holder's slot; or fail saying why."""
    name, private, logger = ensure_scoring_limit(run.config), run.private, get_run_logger()
    lease, started = lease_seconds(), time.time()
    poll = max(0.1, min(5.0, lease / 4))
    unknown_since: float | None = None  # when the slot was first seen taken with no note
    said = False
    while (lease_id := _acquire(name, lease)) is None:
        now = time.time()
        note = _read_note(private)
        if note is None:
            unknown_since = unknown_since or now
        dead = now >= _expires_at(note, lease) if note is not None else now - unknown_since >= lease
        if dead:
            who = (f"{note.get('holder')}, last renewed {now - note['renewed_at']:.0f} s ago" if note
                   else f"no holder note for {lease:g} s")
            logger.warning("the scoring slot %s is held by a run that is gone (%s): freeing it", name, who)
            _free(name, note, private)
            unknown_since = None
            continue
        if note is not None:
            unknown_since = None
        if now - started >= wait_seconds():
            raise ChallengeError(
                f"the scoring slot {name} stayed taken for {now - started:.0f} s: another scoring or finalize run "
                f"of {run.config.name} is still running. Nothing was scored by this run; the next scheduled run will try "
                f"again. If no run is active, free the slot under Concurrency in the Prefect UI, or with "
                f"`prefect gcl update {name} --active-slots 0`")
        if not said:
            logger.warning("waiting for the scoring slot %s: another scoring or finalize run holds it; a run that "
                           "stopped is detected within %g s", name, lease)
            said = True
        until = _expires_at(note, lease) - now if note is not None else poll
        time.sleep(max(0.05, min(poll, until, wait_seconds() - (now - started))))
    beat = _Heartbeat(private, name, lease_id, lease, logger)
    with beat, leases.holding(beat.lease):
        yield beat.lease
    if beat.lease.lost:
        logger.error("%s was lost while this run held it (%s); what it did is kept", beat.lease.what, beat.lease.lost)
