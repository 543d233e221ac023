"""The scoring slot is a lease (issue 22, item 6), on both backends: a holder killed with SIGKILL leaves it
free once its lease runs out, a live slow holder keeps it past many leases, and a holder that lost its lease
takes no more work. Short leases stand in for the 60 s default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import saved, stores
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL

from challenge.core import catalog, leases
from challenge.core.config import ChallengeConfig, load_config
from challenge.core.errors import ChallengeError
from challenge.core.leases import Lease, LeaseLost
from challenge.core.run_context import RunContext
from challenge.core.scoring_slot import _Heartbeat, scoring_limit_name, scoring_slot
from challenge.tasks.scoring.score import ScoringContext, read_and_score

pytestmark = pytest.mark.usefixtures("prefect_harness")
LEASE = 3.0  # seconds: renewed every 0.75 s

HOLDER = """
import sys, time
from prefect import flow
from challenge.core.config import load_config
from challenge.core.run_context import RunContext
from challenge.core.scoring_slot import scoring_slot

@flow
def hold(path: str, seconds: float) -> str:
    with scoring_slot(RunContext(load_config(path))) as lease:
        print("held", flush=True)
        time.sleep(seconds)
        return lease.problem() or "kept"

print(hold(sys.argv[1], float(sys.argv[2])), flush=True)
"""


@flow
def take_slot(path: str) -> str:
    """Take the slot, say what the lease is, give it back."""
    with scoring_slot(RunContext(load_config(path))) as lease:
        return lease.problem() or "held"


def active_slots(config: ChallengeConfig) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(scoring_limit_name(config)).active_slots


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHALLENGE_SCORING_LEASE_SECONDS", str(LEASE))
    yield


def start_holder(config: ChallengeConfig, seconds: float) -> subprocess.Popen:
    """A process holding the slot for `seconds`, once it printed `held`."""
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "ERROR"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, saved(config), str(seconds)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = holder.stdout.readline()
    if line.strip() != "held":
        holder.kill()
        raise AssertionError(f"the holder did not take the slot: {line!r} {holder.stderr.read()[-2000:]}")
    return holder


def test_a_holder_killed_with_sigkill_frees_the_slot_when_its_lease_runs_out(
        config: ChallengeConfig, short_lease: None, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = start_holder(config, 600)
    _, private, _ = stores(config)
    note = json.loads(private.read_bytes(catalog.SCORING_SLOT_NOTE))
    assert note["lease_seconds"] == LEASE and note["lease_id"] and active_slots(config) == 1
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert active_slots(config) == 1  # left taken by the dead run
    monkeypatch.setenv("CHALLENGE_SCORING_WAIT_SECONDS", "60")  # far more than a lease: a failure would be an error
    assert take_slot(saved(config)) == "held"
    assert active_slots(config) == 0  # given back, and the dead run's lease revoked (counted once, not twice)
    assert not private.exists(catalog.SCORING_SLOT_NOTE)


def test_a_live_slow_holder_keeps_the_slot_past_several_leases(config: ChallengeConfig, short_lease: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    holder = start_holder(config, 5 * LEASE)
    try:
        monkeypatch.setenv("CHALLENGE_SCORING_WAIT_SECONDS", str(3 * LEASE))
        with pytest.raises(ChallengeError, match=r"stayed taken for \d+ s: another scoring or finalize run"):
            take_slot(saved(config))
        out, err = holder.communicate(timeout=120)
    finally:
        holder.kill()
    assert holder.returncode == 0 and out.strip().splitlines()[-1] == "kept", err[-2000:]  # never lost it
    assert take_slot(saved(config)) == "held" and active_slots(config) == 0


@flow
def hold_while(path: str, action: str) -> str:
    """Take the slot, then make its renewals fail (`fail`) or another run's note replace this one's
    (`taken`); wait until the lease says it is lost and return why."""
    config = load_config(path)
    _, private, _ = stores(config)
    with scoring_slot(RunContext(config)) as lease:
        if action == "taken":
            private.write_bytes(catalog.SCORING_SLOT_NOTE, json.dumps({"holder": "elsewhere:1:x",
                                                                       "renewed_at": time.time()}).encode())
        deadline = time.monotonic() + 60
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(LeaseLost, match="this run stopped taking new work"):
            lease.check()
        return lease.problem() or ""


def test_a_holder_whose_renewals_fail_loses_its_lease(config: ChallengeConfig, short_lease: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: _Heartbeat) -> None:
        raise OSError("injected: the private location is away")

    original = _Heartbeat.__enter__

    def enter(self: _Heartbeat) -> _Heartbeat:  # the first note is written; every renewal after it fails
        entered = original(self)
        monkeypatch.setattr(_Heartbeat, "_write", broken)
        return entered

    monkeypatch.setattr(_Heartbeat, "__enter__", enter)
    why = hold_while(saved(config), "fail")
    assert "not renewed for" in why and "injected: the private location is away" in why
    assert active_slots(config) == 0  # nobody took it over: given back at the end


def test_a_holder_taken_over_loses_its_lease_and_does_not_free_the_new_holders_slot(
        config: ChallengeConfig, short_lease: None) -> None:
    why = hold_while(saved(config), "taken")
    assert "names another run" in why
    assert active_slots(config) == 1  # not released: the slot is the other run's now
    _, private, _ = stores(config)
    assert json.loads(private.read_bytes(catalog.SCORING_SLOT_NOTE))["holder"] == "elsewhere:1:x"  # its note kept
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(scoring_limit_name(config), GlobalConcurrencyLimitUpdate(active_slots=0))


def test_a_run_that_lost_its_lease_scores_nothing_more(config: ChallengeConfig) -> None:
    """The scoring step checks the current lease before each submission it takes."""
    _, _, submissions = stores(config)
    lease = Lease("the scoring slot test", 60)
    lease.lose("injected: another run took over")
    taken = []
    with leases.holding(lease), pytest.raises(LeaseLost, match="injected: another run took over"):
        read_and_score([object()] * 3, ScoringContext(RunContext(config), set(), {}, {}), None, submissions,  # type: ignore[list-item]
                       progress=taken.append)
    assert taken == []
    assert leases.current() is None
