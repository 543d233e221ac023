"""The challenge's scikit-learn baseline as an algorithm (docs/contract.md).

    python main.py --input IN --output OUT

IN is a task folder as `challenge download` writes it (the runner adds task.json, which this one does not
need: the manifest says the same); OUT/predictions.csv gets one label per test id, in the sample
submission's format. Zip this folder's contents to submit it; try it by hand on a download, or with
`challenge algorithm-check`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from challenge.tasks.baselines.training import released_task, train_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="the task folder (with task.json)")
    parser.add_argument("--output", required=True, type=Path, help="the folder predictions.csv is written into")
    args = parser.parse_args()
    trained = train_baseline(released_task(args.input))
    (args.output / "predictions.csv").write_bytes(trained.csv)
    print(f"{trained.task_id}: {trained.model}; validation {trained.metric} {trained.validation_score:.4f} "
          f"on {trained.train_rows} train rows, {trained.test_rows} predictions in {trained.seconds:.1f} s")


if __name__ == "__main__":
    main()
