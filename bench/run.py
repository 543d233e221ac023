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


def bench_config(folder: Path):  # noqa: ANN201
    from challenge.config import ChallengeConfig

    # Generated text repeats a small vocabulary: the leak checks run (and are timed) but may not fail.
    return ChallengeConfig.model_validate({
        "name": "bench", "title": "bench",
        "storage": {n: str(folder / n) for n in ("intake", "public", "private", "submissions")},
        "release": {"max_duplicate_fraction": 1, "max_text_duplicate_fraction": 1},
    })


def measure_gate(folder: Path) -> dict:
    from challenge.storage import LocalStorage
    from challenge.tasks.drops import discover_drops, run_time_label
    from challenge.tasks.gate import gate_drop

    drops, _ = discover_drops(LocalStorage(folder / "intake"))
    rss_before = peak_rss()
    start = time.perf_counter()
    outcome, _ = gate_drop(drops[0], bench_config(folder), run_time_label(), force=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "verdict": outcome.verdict, "failures": outcome.failures, "rss_before": rss_before}


def staged_parquet(folder: Path) -> Path:
    pointer = json.loads((folder / "private" / "staged" / "big-task" / "current.json").read_text())
    return folder / "private" / pointer["prefix"] / "data.parquet"


def measure_write(folder: Path) -> dict:
    """Baseline of publish: read the staged table, write it once as CSV and once as Parquet."""
    import pyarrow.parquet as pq

    out = folder / "baseline-out"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    table = pq.read_table(staged_parquet(folder))
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    pa_csv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), out / "all.csv")
    pq.write_table(table, out / "all.parquet", compression="zstd")
    return {"seconds": time.perf_counter() - start, "arrow_bytes": table.nbytes}


def measure_publish(folder: Path) -> dict:
    from challenge.storage import LocalStorage
    from challenge.tasks.opaque_ids import load_or_create_key
    from challenge.tasks.publish import publish_task

    config = bench_config(folder)
    load_or_create_key(LocalStorage(folder / "private"))
    release = f"bench-{time.time_ns()}"
    rss_before = peak_rss()
    start = time.perf_counter()
    summary = publish_task(config, "big-task", release)
    return {"seconds": time.perf_counter() - start, "rss_before": rss_before, "counts": summary["counts"]}


MEASURES = {"read": measure_read, "gate": measure_gate, "write": measure_write, "publish": measure_publish}


def child(kind: str, path: str) -> None:
    if kind in ("gate", "publish"):
        import great_expectations  # noqa: F401  (imports are not part of the measurement)
        import prefect  # noqa: F401
    result = MEASURES[kind](Path(path))
    result["peak_rss"] = peak_rss()
    print(json.dumps(result))


def run_child(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{kind} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(name: str, baseline_name: str, base: dict, run: dict, arrow_bytes: int) -> None:
    mb = 1 << 20
    own = run["peak_rss"] - run["rss_before"]
    print(f"  {baseline_name} (baseline, best of 3): {base['seconds']:.2f} s; Arrow table {arrow_bytes / mb:.0f} MiB")
    print(f"  {name}: {run['seconds']:.2f} s")
    print(f"  time ratio {name} / baseline:  {run['seconds'] / base['seconds']:.2f}x   (target <= 3x)")
    print(f"  peak RSS: {run['peak_rss'] / mb:.0f} MiB ({run['rss_before'] / mb:.0f} MiB after imports, "
          f"{own / mb:.0f} MiB for the {name})")
    print(f"  RSS ratio ({name}'s own) / Arrow size: {own / arrow_bytes:.2f}x   (target <= 3x); "
          f"whole process / Arrow: {run['peak_rss'] / arrow_bytes:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("which", nargs="?", choices=["gate", "publish", "all"], default="all")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="challenge-bench-") as tmp:
        folder = Path(tmp)
        csv_path = generate_drop(folder, args.rows)
        print(f"generated drop: {args.rows:,} rows, 10 columns (3 text), CSV of {csv_path.stat().st_size / (1 << 20):.0f} MiB")
        gate = run_child("gate", folder)  # also stages the task for publish
        if gate["verdict"] != "pass":
            raise SystemExit(f"gate did not pass: {gate['failures']}")
        if args.which in ("gate", "all"):
            read = min((run_child("read", csv_path) for _ in range(3)), key=lambda r: r["seconds"])
            print("gate: quality gate of the drop vs pyarrow.csv.read_csv of its file")
            report("gate", "read_csv", read, gate, read["arrow_bytes"])
        if args.which in ("publish", "all"):
            write = min((run_child("write", folder) for _ in range(3)), key=lambda r: r["seconds"])
            publish = run_child("publish", folder)
            print("publish: release of the staged task vs reading it and writing it once as CSV + Parquet")
            report("publish", "read + write", write, publish, write["arrow_bytes"])
            print(f"  counts: {publish['counts']}")


if __name__ == "__main__":
    main()
