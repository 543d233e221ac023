"""Benchmark of an organizer command's fixed cost (issue: a local Prefect API that stays up).

An idle `challenge score` (a published release, nothing new to score), as a user types it, timed from
outside (the whole process). In each round, with a new PREFECT_HOME:

1. first: the first command on the new home (it starts the local Prefect server and waits for it);
2. second: the same command again (it reuses the server); target ≤ 40% of the first;
3. --no-server: the same command on Prefect's temporary API server (started and stopped with the
   command: what every command paid before), on the same home, its database already made.

Ratios are taken round by round against the baselines of the same run; `--burners N` runs N CPU-bound
processes beside every command (a busy machine). Every server it started is stopped at the end.

    python bench/cli_fixed_cost.py [--rounds 3] [--burners 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLI = Path(sys.executable).parent / "challenge"
TARGET = 0.40


def environment(home: Path) -> dict[str, str]:
    """A user's shell with a given PREFECT_HOME: no PREFECT_ settings, the local server not turned off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "CHALLENGE_NO_SERVER"}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING", "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def timed(home: Path, *args: str) -> float:
    """Wall seconds of one CLI command (it must succeed)."""
    started = time.monotonic()
    done = subprocess.run([str(CLI), *args], env=environment(home), capture_output=True, text=True, timeout=900,
                          check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"`challenge {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
    return seconds


@contextmanager
def burners(count: int) -> Iterator[None]:
    """`count` CPU-bound processes for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burners", type=int, default=0, help="CPU-bound processes beside every command")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    config = root / "challenge" / "challenge.yaml"
    setup_home = root / "setup-home"
    print(f"setting up a published challenge in {config.parent} (temporary API) ...", flush=True)
    timed(setup_home, "init", str(config.parent), "--with-examples")
    for step in (["collect"], ["publish", "--release", "r1"]):
        timed(setup_home, "--no-server", "--config", str(config), *step)
    score = ["--config", str(config), "score"]
    rows: list[tuple[float, float, float]] = []
    homes: list[Path] = []
    try:
        with burners(args.burners):
            for round_ in range(args.rounds):
                home = root / f"home-{round_}"
                homes.append(home)
                first = timed(home, *score)
                second = timed(home, *score)
                temporary = timed(home, "--no-server", *score)
                rows.append((first, second, temporary))
                print(f"  round {round_ + 1}: first {first:.1f} s, second {second:.1f} s, --no-server {temporary:.1f} s",
                      flush=True)
    finally:
        for home in homes:
            subprocess.run([str(CLI), "server", "stop"], env=environment(home), capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)
    first, second, temporary = (statistics.median(column) for column in zip(*rows))
    vs_first = statistics.median(s / f for f, s, _ in rows)
    vs_temporary = statistics.median(s / t for _, s, t in rows)
    print(f"idle `challenge score`, median of {args.rounds} round(s), {args.burners} CPU burner(s) beside it, "
          f"{os.cpu_count()} cores:")
    print(f"  first on a new PREFECT_HOME (starts the local server): {first:.1f} s")
    print(f"  second (reuses it): {second:.1f} s = {vs_first:.2f}× the first (target ≤ {TARGET:.2f}: "
          f"{'met' if vs_first <= TARGET else 'NOT met'})")
    print(f"  --no-server (temporary API server, as before): {temporary:.1f} s; second / --no-server = {vs_temporary:.2f}×")


if __name__ == "__main__":
    main()
