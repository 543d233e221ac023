"""The gate of one drop in a process of its own, within the drop's time budget (challenge.yaml's
intake.max_seconds_per_drop).

A thread cannot be stopped: a drop whose checks never end (a task.yaml expectation whose pattern backtracks
for hours, a reader stuck in a C call) would hold its thread, its memory and, through the GIL, slow every
other drop. So each drop is gated in a child process, and the thread that waits for it (a Prefect task on
the flow's runner) gets it back at the budget: the child and everything it started are killed, and the drop
fails with a report saying when it stopped, in which step, and the checks it had done by then.

Children are forked from a server process that imported the gate and Great Expectations once
(multiprocessing's forkserver: no fork of a process whose threads may hold locks), so starting one costs
milliseconds. In a daemonic process (a Dask worker), which may not use multiprocessing, the child is a new
interpreter (subprocess) instead: bounded the same way, with the imports paid per drop. At most
intake.parallel_drops children (default: one per core) run at once in one process; the budget starts when
a drop's child starts. Once a drop that passed is being staged, its upload gets one more budget (a kill
then could leave a staged version without its report).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from challenge.core.config import ChallengeConfig
from challenge.core.run_context import RunContext
from challenge.expectations.checks import CheckResult, failed
from challenge.tasks.intake.drops import Claimant, Drop, DropOutcome
from challenge.tasks.intake.gate import DropRun, run_gate, stopped_gate, take_drop
from challenge.tasks.intake.gate_reports import GateReport

EXIT_SECONDS = 30  # a child that answered and still runs after this is killed
STAGING = "staging the data"  # the step after which the budget is renewed once (see the module's docstring)
_CONTEXT = multiprocessing.get_context("forkserver")
_PRELOAD = ["challenge.tasks.intake.gate", "great_expectations"]
_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


class GateCrashed(RuntimeError):
    """The gate raised in its process: a fault of the product (the flow's task retries it)."""


def _slot(config: ChallengeConfig) -> threading.BoundedSemaphore:
    size = config.intake.parallel_drops or os.cpu_count() or 1
    with _slots_lock:
        return _slots.setdefault(size, threading.BoundedSemaphore(size))


def gate_drop_within_budget(drop: Drop, run: RunContext, run_time: str, clash: list[Claimant] | None = None,
                            force: bool = False) -> tuple[DropOutcome, GateReport | None]:
    """gate_drop (tasks/intake/gate.py) in a child process stopped at the drop's time budget; an unchanged drop is
    answered here, without a child."""
    taken = take_drop(drop, run, run_time, clash, force)
    if isinstance(taken, DropOutcome):
        return taken, None
    with _slot(run.config):
        return _run_child(taken)


def _run_child(run: DropRun) -> tuple[DropOutcome, GateReport]:
    budget = run.context.config.intake.max_seconds_per_drop
    child = _start(run)
    step, checks = "starting", []
    deadline, renewed = time.monotonic() + budget, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not child.connection.poll(left):
                if left > 0 or not child.connection.poll(0):  # (a message that came at the last moment is read)
                    child.kill()
                    return stopped_gate(run, checks, _out_of_time(budget, step), retry=False)
            try:
                kind, *message = child.connection.recv()
            except (EOFError, OSError):  # the process ended without a word: killed (memory?) or crashed
                code = child.wait()
                return stopped_gate(run, checks, _ended(code, step), retry=True)
            if kind == "step":
                step, checks = message
                if step == STAGING and not renewed:
                    deadline, renewed = time.monotonic() + budget, True
            elif kind == "done":
                return message[0], message[1]
            else:
                raise GateCrashed(f"{run.drop.name}: the gate failed in its process: {message[0]}\n{message[1]}")
    finally:
        child.close()


def _out_of_time(budget: float, step: str) -> CheckResult:
    return failed("time_budget", "drop", count=1, source="read", examples=[{"seconds": budget, "step": step}],
                  hint=f"the gate of this drop took longer than {budget:g} s (intake.max_seconds_per_drop in "
                       f"challenge.yaml) and was stopped while {step}; the checks above ran. Make the drop smaller or "
                       "its task.yaml expectations simpler, or ask the organizers to raise intake.max_seconds_per_drop")


def _ended(code: int | None, step: str) -> CheckResult:
    how = f"was killed by signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exited with code {code}"
    memory = " (most likely out of memory: a file that decodes to far more than its size?)" if code == -signal.SIGKILL else ""
    return failed("gate_process", "drop", count=1, source="read", examples=[{"exit": code, "step": step}],
                  hint=f"the gate's process {how}{memory} while {step}; the checks above ran. It is tried again on "
                       "the next collect; if it ends so again, make the drop smaller or tell the organizers")


# ---- the child --------------------------------------------------------------------------------------------


class _Child:
    """A running gate process: the connection it reports on, and how to stop it with everything it started."""

    def __init__(self, connection: Connection, process: Any):
        self.connection, self.process = connection, process

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the child leads its own process group (see _child_main)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.kill()
        except (ProcessLookupError, OSError):
            pass
        self.wait()

    def wait(self, seconds: float | None = None) -> int | None:
        """The exit code once the process ends (None if it still runs after `seconds`)."""
        if isinstance(self.process, subprocess.Popen):
            try:
                return self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                return None
        self.process.join(seconds)
        return self.process.exitcode

    def close(self) -> None:
        """Once its answer is in, the process ends at once; one that lingers is killed."""
        self.connection.close()
        if self.wait(EXIT_SECONDS) is None:
            self.kill()
        if not isinstance(self.process, subprocess.Popen):
            self.process.close()


def _start(run: DropRun) -> _Child:
    if _daemonic():
        return _start_interpreter(run)
    _CONTEXT.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
    parent, child_end = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child_main, args=(child_end, run), name=f"gate-{run.drop.name}", daemon=False)
    process.start()
    child_end.close()
    return _Child(parent, process)


def _daemonic() -> bool:
    """Whether this process may not start multiprocessing children (a Dask worker's is daemonic)."""
    return multiprocessing.current_process().daemon


def _start_interpreter(run: DropRun) -> _Child:
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", f"from challenge.tasks.intake.gate_process import _interpreter_main; _interpreter_main({write_fd})"],
        stdin=subprocess.PIPE, pass_fds=(write_fd,), start_new_session=True)
    os.close(write_fd)
    assert process.stdin is not None
    process.stdin.write(pickle.dumps(run))
    process.stdin.close()
    return _Child(Connection(read_fd, writable=False), process)


def _interpreter_main(fd: int) -> None:
    _run(Connection(fd, readable=False), pickle.loads(sys.stdin.buffer.read()))


def _child_main(connection: Connection, run: DropRun) -> None:
    os.setpgrp()  # a group of its own: a kill at the budget also stops the processes the gate started
    _run(connection, run)


def _run(connection: Connection, run: DropRun) -> None:
    try:
        outcome, report = run_gate(run, progress=lambda step, checks: connection.send(("step", step, checks)))
        connection.send(("done", outcome, report))
    except Exception as exc:  # noqa: BLE001 (reported to the parent, which raises it for the flow's retries)
        connection.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        connection.close()
