"""Scoring benchmark (b): N submissions of R rows through the whole score_submissions flow,
on moto's S3 server over HTTP (its own process).

    python bench/flow_scoring.py [--submissions 1000] [--rows 10000]

Set-up (staging, publishing, uploading) is not timed; a first empty flow run
starts Prefect's temporary API so that its start-up is not timed either.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_DEFAULT_REGION", "us-east-1")):
    os.environ.setdefault(name, value)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from moto_server import start_moto  # noqa: E402  (bench/ is on the path: run as bench/<script>.py)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    from challenge.core.config import ChallengeConfig, write_config
    from challenge.core.storage import open_storage, upload_tree
    from challenge.flows.publish_release import publish_release
    from challenge.flows.score_submissions import score_submissions
    from challenge.tasks.intake.drops import discover_drops, run_time_label
    from challenge.tasks.intake.gate import gate_drop
    from challenge.core.run_context import RunContext

    server, endpoint = start_moto()
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        teams = [{"id": f"team-{i:02d}", "name": f"Team {i}"} for i in range(50)]
        config = ChallengeConfig.model_validate({
            "name": "bench", "title": "bench", "teams": teams,
            "storage": {**{n: f"s3://bench/{n}" for n in ("intake", "public", "private", "submissions")},
                        "s3": {"endpoint_url": endpoint}},
            "policy": {"max_submissions_per_day": 1000, "public_fraction": 0.3},
            "release": {"max_duplicate_fraction": 1, "max_text_duplicate_fraction": 1},
        })
        config_path = str(write_config(config, Path(tempfile.mkdtemp(prefix="bench-config-")) / "challenge.yaml"))
        rng = np.random.default_rng(0)
        total = args.rows * 5  # test_fraction 0.2 → `rows` test rows
        with tempfile.TemporaryDirectory() as tmp:
            drop = Path(tmp) / "bench-task"
            drop.mkdir()
            pq.write_table(pa.table({
                "row_id": [f"r{i}" for i in range(total)], "x": rng.random(total), "y": rng.random(total),
                "label": np.array([f"c{i}" for i in range(10)])[rng.integers(0, 10, total)],
            }), drop / "data.parquet")
            (drop / "task.yaml").write_text(
                "task_id: bench-task\nkind: classification\ntitle: bench\nowner: bench\nlicense: CC0-1.0\n"
                "metric: accuracy\nid_column: row_id\nlabel_column: label\ncolumns: {x: numeric, y: numeric}\n"
                "data: data.parquet\n")
            upload_tree(open_storage(config.storage.intake, endpoint), drop, "bench-team/bench-task")
        drops, _ = discover_drops(open_storage(config.storage.intake, endpoint))
        assert gate_drop(drops[0], RunContext(config), run_time_label())[0].verdict == "pass"
        publish_release(config_path=config_path, release="r1")
        private, submissions = (open_storage(u, endpoint) for u in (config.storage.private, config.storage.submissions))
        answers = pq.read_table(io.BytesIO(private.read_bytes("releases/r1/bench-task/answers.parquet")))
        score_submissions(config_path=config_path)  # warm: Prefect's temporary API is up, nothing to score

        def upload(i: int) -> None:
            labels = np.array(answers["label"].to_pylist(), dtype=object)
            wrong = rng.random(len(labels)) < 0.3
            labels[wrong] = "c0"
            out = io.BytesIO()
            pa_csv.write_csv(pa.table({"id": answers["id"], "label": pa.array(labels.tolist())}), out)
            submissions.write_bytes(f"team-{i % 50:02d}/bench-task/sub-{i:04d}.csv", out.getvalue())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, range(args.submissions)))
        start = time.perf_counter()
        result = score_submissions(config_path=config_path)
        seconds = time.perf_counter() - start
        print(f"score_submissions: {args.submissions} submissions of {answers.num_rows:,} rows on moto's S3 server: "
              f"{seconds:.1f} s (target < 60 s); statuses {result.statuses}, errors {result.errors}")

        # The next scheduled run, nothing new: unchanged records come from the results index.
        from challenge.core.catalog import RESULTS_INDEX as INDEX_KEY

        score_submissions(config_path=config_path)  # the first run after scoring reads the new records once
        start = time.perf_counter()
        score_submissions(config_path=config_path)
        idle = time.perf_counter() - start
        private.delete(INDEX_KEY)  # baseline: the same run reading every record
        start = time.perf_counter()
        score_submissions(config_path=config_path)
        unindexed = time.perf_counter() - start
        print(f"next run, nothing new, {args.submissions} results: {idle:.1f} s with the results index, "
              f"{unindexed:.1f} s reading every record ({unindexed / idle:.1f}x)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
