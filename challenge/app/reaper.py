"""Nothing of a command outlives it when it is killed: a watchdog process ends what the command started.

A command that runs flows may start Prefect's temporary API server (`--no-server`) or Dask workers as
child processes. When the command exits normally they are stopped; when it is killed (SIGKILL, the
OOM killer, a closed terminal) nobody would stop them. `watch_this_process()` starts a small
watchdog (the standard library only, in its own session) that notes the command's descendants every
second and, once the command is gone (the pipe it holds closes), stops those still running, and
those started since its last look (they inherit `_CHALLENGE_WATCHED=<pid>` in their environment):
SIGTERM, then SIGKILL. Processes that started a session of their own (the local Prefect server that is
meant to stay up) are left alone. Linux only (/proc); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WATCHDOG = r"""
import os, select, signal, sys, time
parent, fd, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

def table():
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry)] = (int(fields[1]), int(fields[3]), fields[19])  # ppid, session, start time
    return out

def descendants(procs, root, session):
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child, (ppid, sid, start) in procs.items():
            if ppid == pid and child not in found and sid == session:
                found[child] = start
                todo.append(child)
    return found

procs = table()
session = procs.get(parent, (0, -1, ""))[1]
seen = {}
while True:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if ready and not os.read(fd, 1):
        break  # the command is gone
    seen.update(descendants(table(), parent, session))
procs = table()
marker = f"_CHALLENGE_WATCHED={parent}".encode()
for pid, (_, sid, start) in procs.items():  # started since the last look: they carry the command's mark
    if sid == session and pid != os.getpid():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if marker in fh.read().split(b"\0"):
                    seen[pid] = start
        except OSError:
            pass
alive = {pid: start for pid, start in seen.items() if procs.get(pid, (0, 0, None))[2] == start}
for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        procs = table()
        alive = {p: s for p, s in alive.items() if procs.get(p, (0, 0, None))[2] == s}
        if not alive:
            break
        time.sleep(0.2)
"""


def watch_this_process(grace: float = 10) -> subprocess.Popen | None:
    """Start the watchdog of this process (once); it ends with it. None where there is no /proc."""
    if not Path("/proc/self/stat").exists() or os.environ.get("_CHALLENGE_WATCHED") == str(os.getpid()):
        return None
    read, write = os.pipe()  # the write end stays here (not inherited): it closes when this process dies
    try:
        watchdog = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHDOG, str(os.getpid()), str(read), str(grace)],
                                    pass_fds=(read,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(read)
    watchdog.returncode = 0  # it outlives this process by design: no "still running" warning at exit
    os.environ["_CHALLENGE_WATCHED"] = str(os.getpid())
    _KEEP.append(write)
    return watchdog


_KEEP: list[int] = []  # the pipe's write end, open for the life of this process
