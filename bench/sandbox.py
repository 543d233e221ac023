"""What the algorithm sandbox adds to a run: `check_algorithm` (IN laid out, bubblewrap started, the bounds
set, the predictions checked with the scorer's checks) against `python main.py` run directly on the same
folder, both with the same interpreter. Issue 24's target: at most 1.5 s on top of the algorithm's own time.

    python bench/sandbox.py [--rows 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.config import AlgorithmSettings
from challenge.tasks.algorithms.check import check_algorithm

ALGORITHM = """
import argparse, shutil
from pathlib import Path
import pandas as pd
p = argparse.ArgumentParser(); p.add_argument("--input", type=Path); p.add_argument("--output", type=Path)
a = p.parse_args()
train, test = pd.read_parquet(a.input / "train.parquet"), pd.read_parquet(a.input / "test.parquet")
majority = train["label"].mode()[0]
pd.DataFrame({"id": test["id"], "label": majority}).to_csv(a.output / "predictions.csv", index=False)
"""


def task_folder(root: Path, rows: int) -> Path:
    """A classification task folder as `challenge download` leaves it: train, test, sample, manifest."""
    folder = root / "r1" / "bench"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"{i:07d}" for i in range(rows)]
    labels = rng.choice(["a", "b", "c"], rows)
    cut = int(rows * 0.75)
    pq.write_table(pa.table({"id": ids[:cut], "x": rng.random(cut), "label": labels[:cut]}), folder / catalog.table_file("train"))
    pq.write_table(pa.table({"id": ids[cut:], "x": rng.random(rows - cut)}), folder / catalog.table_file("test"))
    pa_csv.write_csv(pa.table({"id": ids[cut:], "label": ["a"] * (rows - cut)}), str(folder / catalog.SAMPLE_SUBMISSION))
    manifest = catalog.Manifest(task_id="bench", kind="classification", release="r1", metric="accuracy",
                                columns={"x": catalog.ColumnInfo(modality="numeric")}, answers_sha256="-", files=[])
    (folder / catalog.MANIFEST).write_bytes(manifest.to_json())
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = task_folder(root, args.rows)
        code = root / "algorithm"
        code.mkdir()
        (code / "main.py").write_text(ALGORITHM)
        direct, sandboxed = [], []
        for i in range(args.repeats):
            out = root / f"direct-{i}"
            out.mkdir()
            started = time.perf_counter()
            subprocess.run([sys.executable, str(code / "main.py"), "--input", str(folder), "--output", str(out)], check=True)
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            checked = check_algorithm(code, folder, AlgorithmSettings())
            sandboxed.append(time.perf_counter() - started)
            assert checked.status == "valid", (checked.message, checked.run.stderr_tail)
    d, s = statistics.median(direct), statistics.median(sandboxed)
    print(f"{args.rows} rows, {args.repeats} runs each (median; min {min(direct):.2f} / {min(sandboxed):.2f} s)")
    print(f"  python main.py directly       {d:6.2f} s")
    print(f"  check_algorithm (sandboxed)   {s:6.2f} s   ratio {s / d:.2f}x, overhead {s - d:+.2f} s (target <= 1.5 s)")


if __name__ == "__main__":
    main()
