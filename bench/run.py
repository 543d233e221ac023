"""Benchmarks with a baseline measured in the same run (see bench/README.md).

    python bench/run.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

WORDS = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split())


def generate_drop(folder: Path, rows: int, seed: int = 0) -> Path:
    """A classification drop: id, 3 text, 3 numeric, 2 categorical, label (10 columns)."""
    rng = np.random.default_rng(seed)
    drop = folder / "intake" / "bench-team" / "big-task"
    drop.mkdir(parents=True)

    def text(n_words: int) -> pa.Array:
        words = WORDS[rng.integers(0, len(WORDS), size=(rows, n_words))]
        return pa.array([" ".join(w) for w in words.tolist()])

    table = pa.table({
        "row_id": pa.array([f"r{i:08d}" for i in range(rows)]),
        "title": text(3),
        "description": text(8),
        "brand": text(1),
        "price": rng.uniform(0, 1000, rows).round(2),
        "weight": rng.uniform(0, 50, rows).round(3),
        "stock": rng.integers(0, 500, rows),
        "colour": pa.array(rng.choice(["red", "green", "blue", "black", "white"], rows)),
        "size": pa.array(rng.choice(["s", "m", "l", "xl"], rows)),
        "category": pa.array(np.char.add("class-", rng.integers(0, 20, rows).astype(str))),
    })
    pa_csv.write_csv(table, drop / "data.csv")
    (drop / "task.yaml").write_text("""\
task_id: big-task
kind: classification
title: Generated benchmark task
owner: bench-team
license: CC0-1.0
metric: macro_f1
id_column: row_id
label_column: category
columns: {title: text, description: text, brand: text, price: numeric, weight: numeric, stock: numeric,
          colour: categorical, size: categorical}
data: data.csv
""")
    return drop / "data.csv"


def peak_rss() -> int:
    """High-water RSS of this process (VmHWM; unlike ru_maxrss it is not inherited through fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_read(path: Path) -> dict:
    start = time.perf_counter()
    table = pa_csv.read_csv(path)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "arrow_bytes": table.nbytes}


def measure_gate(folder: Path) -> dict:
    from challenge.config import ChallengeConfig
    from tasks.intake import discover_drops, gate_drop, run_time_label
    from tasks.storage import LocalStorage

    config = ChallengeConfig.model_validate({"name": "bench", "title": "bench", "storage": {
        n: str(folder / n) for n in ("intake", "public", "private", "submissions")}})
    drops, _ = discover_drops(LocalStorage(folder / "intake"))
    rss_before = peak_rss()
    start = time.perf_counter()
    outcome, _ = gate_drop(drops[0], config, run_time_label(), force=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "verdict": outcome.verdict, "failures": outcome.failures, "rss_before": rss_before}


def child(kind: str, path: str) -> None:
    if kind == "gate":
        import great_expectations  # noqa: F401  (imports are not part of the measurement)
        import prefect  # noqa: F401
    result = measure_read(Path(path)) if kind == "read" else measure_gate(Path(path))
    result["peak_rss"] = peak_rss()
    print(json.dumps(result))


def run_child(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="challenge-bench-") as tmp:
        folder = Path(tmp)
        csv_path = generate_drop(folder, args.rows)
        read = min((run_child("read", csv_path) for _ in range(3)), key=lambda r: r["seconds"])
        gate = run_child("gate", folder)
        csv_size = csv_path.stat().st_size
    mb = 1 << 20
    extra_rss = gate["peak_rss"] - gate["rss_before"]
    print(f"gate benchmark: {args.rows:,} rows, 10 columns (3 text), CSV of {csv_size / mb:.0f} MiB")
    print(f"  pyarrow read_csv (baseline, best of 3): {read['seconds']:.2f} s; Arrow table {read['arrow_bytes'] / mb:.0f} MiB")
    print(f"  gate ({gate['verdict']}):                  {gate['seconds']:.2f} s")
    print(f"  time ratio gate / read:               {gate['seconds'] / read['seconds']:.2f}x   (target <= 3x)")
    print(f"  peak RSS of the gate process:         {gate['peak_rss'] / mb:.0f} MiB "
          f"({gate['rss_before'] / mb:.0f} MiB after imports, {extra_rss / mb:.0f} MiB for the gate)")
    print(f"  RSS ratio (gate's own) / Arrow size:  {extra_rss / read['arrow_bytes']:.2f}x   (target <= 3x)")
    print(f"  RSS ratio (whole process) / Arrow:    {gate['peak_rss'] / read['arrow_bytes']:.2f}x")
    if gate["failures"]:
        print("  unexpected failures:", gate["failures"])


if __name__ == "__main__":
    main()
