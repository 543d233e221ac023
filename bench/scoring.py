"""Scoring benchmarks (see bench/README.md).

    python bench/scoring.py [--rows 1000000]

(a) one submission of N rows: our scoring (read, validate, every metric on
the public and private parts) vs pyarrow reading the same file, and vs the
naive peer (pandas read_csv + merge + scikit-learn metrics).
"""

from __future__ import annotations

import argparse
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

from challenge.tasks.scoring import AnswerKey, evaluate  # noqa: E402
from challenge.tasks.submissions import Submission  # noqa: E402


def best_of(n: int, fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive(sub_path: Path, answers: pd.DataFrame) -> None:
    from sklearn import metrics as skm

    sub = pd.read_csv(sub_path, dtype=str)
    merged = answers.merge(sub, on="id", suffixes=("_true", "_pred"))
    for part in ("public", "private"):
        frame = merged[merged["usage"] == part]
        t, p = frame["label_true"], frame["label_pred"]
        skm.accuracy_score(t, p)
        skm.f1_score(t, p, average="macro")
        skm.f1_score(t, p, average="weighted")
        skm.balanced_accuracy_score(t, p)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    ids = pa.array([f"{i:07d}" for i in rng.permutation(n)])
    classes = np.array([f"class-{i}" for i in range(20)])
    truth = pa.array(classes[rng.integers(0, 20, n)])
    usage = pa.array(np.where(rng.random(n) < 0.3, "public", "private"))
    order = pc.sort_indices(ids)
    key = AnswerKey("bench", "bench", "classification", "macro_f1", "0" * 64, ids.take(order), truth.take(order),
                    pc.equal(usage.take(order), "public"), pa.array(sorted(classes)))
    predicted = pa.array(np.where(rng.random(n) < 0.7, truth.to_numpy(zero_copy_only=False), classes[rng.integers(0, 20, n)]))
    submission = pa.table({"id": ids, "label": predicted})
    answers_frame = pa.table({"id": ids, "label": truth, "usage": usage}).to_pandas()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, parquet_path = Path(tmp) / "sub.csv", Path(tmp) / "sub.parquet"
        pa_csv.write_csv(submission, csv_path)
        pq.write_table(submission, parquet_path)
        now = datetime.now(timezone.utc)
        subs = {p: Submission(f"t/bench/{p.name}", "t", "bench", p.name, "x", p.stat().st_size, now) for p in (csv_path, parquet_path)}
        read_csv = best_of(3, lambda: pa_csv.read_csv(csv_path))
        read_parquet = best_of(3, lambda: pq.read_table(parquet_path))
        ours_csv = best_of(3, lambda: evaluate(subs[csv_path], csv_path.read_bytes(), key))
        ours_parquet = best_of(3, lambda: evaluate(subs[parquet_path], parquet_path.read_bytes(), key))
        peer = best_of(1, lambda: naive(csv_path, answers_frame))
    print(f"scoring one submission of {n:,} rows (20 classes; 4 metrics on public and private parts)")
    print(f"  pyarrow read: CSV {read_csv:.3f} s, Parquet {read_parquet:.3f} s")
    print(f"  ours: CSV {ours_csv:.3f} s ({ours_csv / read_csv:.2f}x the read; target <= 1.5x), "
          f"Parquet {ours_parquet:.3f} s ({ours_parquet / read_parquet:.2f}x the read; target <= 2x)")
    print(f"  naive peer (pandas read_csv + merge + sklearn): {peer:.3f} s; ours (CSV) is {peer / ours_csv:.1f}x faster "
          "(target >= 5x)")


if __name__ == "__main__":
    main()
