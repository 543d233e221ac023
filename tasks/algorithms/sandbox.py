"""Run a team's algorithm, `python main.py --input IN --output OUT`, in a sandbox (bubblewrap).

Inside, the algorithm sees a read-only Python runtime (this interpreter and its packages), its own code at
/algorithm, IN at /input (read-only), OUT at /output (the only folder it can write besides a small /tmp),
and nothing else of the host: no network (a network namespace of its own, loopback down), no storage location,
no other team's archive, no /etc, no /home, its own process and IPC namespaces. As root the runner gives each
run a user id of its own (setpriv), so that its process bound holds; the bounds come from challenge.yaml
`algorithms:` (prlimit: address space per process, CPU time, processes, file size, open files) and a wall
clock the runner keeps: at `max_seconds` the sandbox is killed with everything it started.

Without bubblewrap nothing runs (SandboxUnavailable says how to install it): an algorithm is never run
unsandboxed. Production runs the same command in a Kubernetes job (deploy/).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from challenge.core.config import AlgorithmSettings
from challenge.core.errors import SandboxUnavailable

INSIDE_CODE, INSIDE_INPUT, INSIDE_OUTPUT = "/algorithm", "/input", "/output"
STDERR_KEEP = 8 << 10  # bytes of the end of stderr kept for the record and the team's feedback
STDERR_LINES = 40
MEMORY_SAMPLE_SECONDS = 0.1  # how often the sandbox's peak memory is sampled
OPEN_FILES = 1024
_MB = 1 << 20
_RUN_UIDS = (200_000, 260_000)  # a fresh user id per run (as root): no other process shares its process bound
_TOO_LARGE = ("File too large", "[Errno 27]", "No space left on device", "[Errno 28]")  # (Python ignores SIGXFSZ)
_OUT_OF_MEMORY = ("MemoryError", "Unable to allocate", "std::bad_alloc", "Cannot allocate memory", "out of memory")

STATUSES = ("finished", "timeout", "out of memory", "crashed", "output too large")


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use."""

    seconds: float
    cpu_seconds: float
    memory_bytes: int
    processes: int
    output_bytes: int
    threads: int

    @classmethod
    def of(cls, settings: AlgorithmSettings) -> SandboxLimits:
        return cls(settings.max_seconds, settings.max_cpu_seconds, int(settings.max_memory_mb * _MB),
                   settings.max_processes, int(settings.max_output_mb * _MB), settings.threads)


@dataclass(frozen=True)
class SandboxRun:
    """How a run ended: `status` is one of STATUSES ("finished" says nothing of its output: check it)."""

    status: str
    exit_code: int | None  # negative: killed by that signal
    seconds: float
    peak_memory_mb: float  # the largest process's peak resident memory, sampled every 0.1 s
    stderr_tail: str
    why: str = ""  # for a run that did not finish: what stopped it, in words for the team


def sandbox_tools() -> dict[str, str]:
    """The programs the sandbox needs, found on PATH; SandboxUnavailable naming what is missing."""
    needed = ["bwrap", "prlimit"] + (["setpriv"] if os.geteuid() == 0 else [])
    found = {name: shutil.which(name) for name in needed}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SandboxUnavailable(
            f"algorithms run only in a sandbox, and {', '.join(missing)} is not installed: install Debian's "
            "bubblewrap and util-linux (`apt-get install bubblewrap util-linux`), or run the algorithm track "
            "on the Kubernetes work pool (deploy/). Nothing was run.")
    return {name: str(path) for name, path in found.items()}


def _runtime_binds() -> list[str]:
    """bwrap arguments that show this interpreter and its packages read-only, and the system's libraries."""
    args: list[str] = []
    for top in ("bin", "lib", "lib64", "lib32", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(Path(sys.executable).resolve().parent.parent)
    roots.update(_package_folders(roots))
    made: set[Path] = set()
    for root in sorted(r for r in roots if not r.is_relative_to("/usr")):
        if any(root != other and root.is_relative_to(other) for other in roots):
            continue
        for parent in reversed(root.parents):  # bwrap would make them 0700: unreadable for the run's user
            if parent != Path("/") and parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(root), str(root)]
        made.add(root)
    return args


def _package_folders(roots: set[Path]) -> set[Path]:
    """This package's folders when they live outside the runtime (an editable install): an algorithm may
    import challenge's own helpers, as it can on a participant's machine."""
    folders = set()
    for name in ("challenge", "challenge.tasks", "challenge.flows", "challenge.expectations"):
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location).resolve()
            if not any(folder.is_relative_to(root) for root in roots):
                folders.add(folder)
    return folders


def sandbox_command(code: Path, input_dir: Path, output_dir: Path, limits: SandboxLimits) -> list[str]:
    """The command that runs `main.py` of `code` on `input_dir`, writing into `output_dir`."""
    tools = sandbox_tools()
    threads = str(limits.threads)
    env = {"HOME": "/tmp", "TMPDIR": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "LOKY_MAX_CPU_COUNT": threads}
    scratch = str(max(limits.output_bytes, 64 * _MB))
    command = [tools["bwrap"], "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv",
               *[arg for name, value in env.items() for arg in ("--setenv", name, value)],
               "--proc", "/proc", "--dev", "/dev",  # the scratch folders first: a runtime under /tmp is bound on top
               "--perms", "1777", "--size", scratch, "--tmpfs", "/tmp",
               "--perms", "1777", "--size", scratch, "--tmpfs", "/dev/shm", *_runtime_binds(),
               "--ro-bind", str(code), INSIDE_CODE, "--ro-bind", str(input_dir), INSIDE_INPUT,
               "--bind", str(output_dir), INSIDE_OUTPUT, "--chdir", INSIDE_CODE]
    as_root = os.geteuid() == 0
    command += ["--"] if as_root else ["--unshare-user", "--"]
    if as_root:  # a user id of its own: the process bound counts its processes only
        uid = str(secrets.randbelow(_RUN_UIDS[1] - _RUN_UIDS[0]) + _RUN_UIDS[0])
        command += [tools["setpriv"], f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all", "--no-new-privs"]
    command += [tools["prlimit"], f"--as={limits.memory_bytes}", f"--cpu={max(1, int(limits.cpu_seconds))}",
                f"--nproc={limits.processes}", f"--fsize={limits.output_bytes}", f"--nofile={OPEN_FILES}", "--core=0",
                "--", sys.executable, "-E", "-s", f"{INSIDE_CODE}/main.py", "--input", INSIDE_INPUT,
                "--output", INSIDE_OUTPUT]
    return command


class _Tail:
    """The end of a stream, read to its end in a thread (so a run writing 100 MB to stderr never blocks)."""

    def __init__(self, stream, keep: int):  # noqa: ANN001 (a binary pipe)
        self.chunks: deque[bytes] = deque()
        self.kept = 0
        self.keep = keep
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:  # noqa: ANN001
        while chunk := stream.read(64 << 10):
            self.chunks.append(chunk)
            self.kept += len(chunk)
            while self.kept - len(self.chunks[0]) >= self.keep:
                self.kept -= len(self.chunks.popleft())
        stream.close()

    def text(self) -> str:
        self.thread.join(timeout=5)
        data = b"".join(self.chunks)[-self.keep:]
        lines = data.decode("utf-8", "replace").splitlines()[-STDERR_LINES:]
        return "\n".join(lines)


def run_in_sandbox(code: Path, input_dir: Path, output_dir: Path, limits: SandboxLimits) -> SandboxRun:
    """Run the algorithm in `code` on `input_dir` into the empty folder `output_dir`; how it ended."""
    command = sandbox_command(code, input_dir, output_dir, limits)
    output_dir.chmod(0o777)  # the run's own user id writes there
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    stdout, stderr = _Tail(process.stdout, 1024), _Tail(process.stderr, STDERR_KEEP)
    timed_out = False
    deadline = started + limits.seconds
    peak, sampled = 0, 0.0
    while True:
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now - sampled >= MEMORY_SAMPLE_SECONDS:
            peak, sampled = max(peak, _peak_kb(process.pid)), now
        if now >= deadline:
            timed_out = True
            _kill(process.pid)
            _, status = os.waitpid(process.pid, 0)
            break
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    tail = stderr.text()
    stdout.text()
    state, why = _ending(process.returncode, timed_out, tail, output_dir, limits)
    return SandboxRun(state, process.returncode, round(seconds, 3), round(peak / 1024, 1), tail, why)


def _peak_kb(root: int) -> int:
    """The largest high-water resident size (VmHWM, kB) among the live processes under `root`. Sampled: the
    rusage of a child would count the memory of the process that forked it (this one) too."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat_file.parent.name))
    under, frontier = set(), [root]
    while frontier:
        found = [child for child in children.get(frontier.pop(), []) if child not in under]
        under.update(found)
        frontier += found
    peak = 0
    for pid in under:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            continue
    return peak


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # bwrap and its session; the pid namespace dies with its first process
    except ProcessLookupError:
        pass


def _ending(code: int, timed_out: bool, tail: str, output_dir: Path, limits: SandboxLimits) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"it ran longer than {limits.seconds:g} s (algorithms.max_seconds) and was stopped"
    if code == -signal.SIGXCPU:
        return "timeout", f"it used more than {limits.cpu_seconds:g} s of CPU time (algorithms.max_cpu_seconds)"
    written = _folder_bytes(output_dir)
    if code == -signal.SIGXFSZ or written > limits.output_bytes or (code != 0 and any(m in tail for m in _TOO_LARGE)):
        return "output too large", (f"it wrote a file over {limits.output_bytes / _MB:g} MB or filled its scratch space "
                                    "(algorithms.max_output_mb); only predictions.csv is needed")
    if code != 0 and (code == -signal.SIGKILL or any(mark in tail for mark in _OUT_OF_MEMORY)):
        return "out of memory", f"it needed more than {limits.memory_bytes / _MB:g} MB (algorithms.max_memory_mb)"
    if code != 0:
        how = f"was killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exited with code {code}"
        return "crashed", f"it {how}; the end of its stderr is in the record"
    return "finished", ""


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total
