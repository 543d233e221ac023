"""Scoring benchmarks (see bench/README.md).

    python bench/scoring.py [--rows 1000000] [--no-peer]

One submission of N rows (20 classes; ids as published for a test fraction
of 0.2, in shuffled order), as CSV and as Parquet: our scoring
(read, validate, every metric on the public and private parts) vs pyarrow
reading the same file, timed alternately in the same process (best of 3 each),
and vs the naive peer (pandas read_csv + merge + scikit-learn metrics). The
peak RSS of our scoring is measured once per format in a fresh process.
`measure(size)` returns the records of bench/README.md ("score-csv",
"score-parquet"); the peer's time is a field of the "score-csv" record.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from challenge.tasks.scoring.score import AnswerKey, evaluate  # noqa: E402
from challenge.tasks.scoring.submissions import Submission  # noqa: E402

TARGETS = {"csv": 1.5, "parquet": 2.0}  # issue 15, item 5: times the pyarrow read of the same file
BASELINES = {"csv": "pyarrow read_csv", "parquet": "pyarrow read_table"}
PEER_MAX_ROWS = 1_000_000  # the naive peer takes about a minute at 1M rows; it is skipped above


def generate(folder: Path, rows: int) -> None:
    """The answer key (key.parquet), a submission (sub.csv, sub.parquet) and the answers the peer merges."""
    rng = np.random.default_rng(0)
    numbers = np.sort(rng.choice(5 * rows, rows, replace=False))  # published ids: a test fraction of 0.2
    ids = pa.array(np.char.zfill(rng.permutation(numbers).astype(str), max(len(str(5 * rows - 1)), 4)))
    classes = np.array([f"class-{i}" for i in range(20)])
    truth = pa.array(classes[rng.integers(0, 20, rows)])
    usage = pa.array(np.where(rng.random(rows) < 0.3, "public", "private"))
    predicted = pa.array(np.where(rng.random(rows) < 0.7, truth.to_numpy(zero_copy_only=False),
                                  classes[rng.integers(0, 20, rows)]))
    order = pc.sort_indices(ids)
    pq.write_table(pa.table({"id": ids, "label": truth, "usage": usage}).take(order), folder / "key.parquet")
    submission = pa.table({"id": ids, "label": predicted})
    pa_csv.write_csv(submission, folder / "sub.csv")
    pq.write_table(submission, folder / "sub.parquet")


def load_key(folder: Path) -> AnswerKey:
    key = pq.read_table(folder / "key.parquet")
    labels = key["label"].combine_chunks()
    answer_key = AnswerKey("bench", "bench", "classification", "macro_f1", "0" * 64, key["id"].combine_chunks(), labels,
                           pc.equal(key["usage"], "public").combine_chunks(), pc.unique(labels).sort())
    answer_key.index, answer_key.labels_encoded  # noqa: B018 (built once per task and run, not per submission)
    return answer_key


def score_file(path: Path, key: AnswerKey) -> None:
    now = datetime.now(timezone.utc)
    evaluate(Submission(f"t/bench/{path.name}", "t", "bench", path.name, "x", path.stat().st_size, now),
             path.read_bytes(), key)


def read_file(path: Path) -> pa.Table:
    return pa_csv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)


def alternate(repeats: int, first, second) -> tuple[float, float]:  # noqa: ANN001
    """Best time of each of two functions, run in turn (a load that comes and goes hits both)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def naive(folder: Path, answers: pd.DataFrame) -> None:
    """The naive peer: pandas read_csv + merge + scikit-learn's metrics."""
    from sklearn import metrics as skm

    sub = pd.read_csv(folder / "sub.csv", dtype=str)
    merged = answers.merge(sub, on="id", suffixes=("_true", "_pred"))
    for part in ("public", "private"):
        frame = merged[merged["usage"] == part]
        t, p = frame["label_true"], frame["label_pred"]
        skm.accuracy_score(t, p)
        skm.f1_score(t, p, average="macro")
        skm.f1_score(t, p, average="weighted")
        skm.balanced_accuracy_score(t, p)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(path: Path) -> None:
    """One scoring of `path` in this fresh process: its peak RSS, and what it added to the RSS it had
    with the answer key loaded (the peak is reset first: /proc/self/clear_refs)."""
    key = load_key(path.parent)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    score_file(path, key)
    print(json.dumps({"peak_rss": _status("VmHWM"), "own_rss": _status("VmHWM") - before}))


def run_child(path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"scoring benchmark of {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(size: int, repeats: int = 3, peer: bool | None = None) -> list[dict]:
    """One record per format; the naive peer (CSV) runs up to PEER_MAX_ROWS unless `peer` says."""
    peer = size <= PEER_MAX_ROWS if peer is None else peer
    records = []
    with tempfile.TemporaryDirectory(prefix="challenge-bench-scoring-") as tmp:
        folder = Path(tmp)
        generate(folder, size)
        key = load_key(folder)
        for fmt in ("csv", "parquet"):
            path = folder / f"sub.{fmt}"
            score_file(path, key)  # warm-up: imports, first allocations
            base, ours = alternate(repeats, lambda: read_file(path), lambda: score_file(path, key))
            rss, arrow_bytes = run_child(path), read_file(path).nbytes
            records.append({
                "step": f"score-{fmt}", "size": size, "unit": "rows", "seconds": ours, "baseline": BASELINES[fmt],
                "baseline_seconds": base, "ratio": ours / base, "target": TARGETS[fmt], "peak_rss": rss["peak_rss"],
                "own_rss": rss["own_rss"], "arrow_bytes": arrow_bytes, "rss_ratio": rss["own_rss"] / arrow_bytes,
                "rss_target": None})
        if peer:
            answers = pd.read_parquet(folder / "key.parquet")
            start = time.perf_counter()
            naive(folder, answers)
            records[0]["peer_seconds"] = time.perf_counter() - start
            records[0]["peer_speedup"] = records[0]["peer_seconds"] / records[0]["seconds"]  # target >= 5
    return records


def report(records: list[dict]) -> None:
    mb = 1 << 20
    print(f"scoring one submission of {records[0]['size']:,} rows (20 classes; 4 metrics on public and private parts)")
    for r in records:
        print(f"  {r['step']}: {r['seconds']:.3f} s vs {r['baseline']} {r['baseline_seconds']:.3f} s: "
              f"{r['ratio']:.2f}x (target <= {r['target']}x); peak RSS {r['peak_rss'] / mb:.0f} MiB, "
              f"{r['own_rss'] / mb:.0f} MiB for the scoring ({r['rss_ratio']:.2f}x the file's Arrow size)")
    if "peer_seconds" in records[0]:
        print(f"  naive peer (pandas read_csv + merge + sklearn): {records[0]['peer_seconds']:.3f} s; ours (CSV) is "
              f"{records[0]['peer_speedup']:.1f}x faster (target >= 5x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-peer", action="store_true", help="skip the naive peer (about a minute at 1M rows)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    report(measure(args.rows, peer=False if args.no_peer else None))


if __name__ == "__main__":
    main()
