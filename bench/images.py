"""Image drops at scale (issue 15, items 1 and 4): a generated drop of N small PNG/JPEG images.

    python bench/images.py [--images 10000 100000] [--backend local s3] [--tmp /dev/shm]

Steps (records in the format of bench/README.md):
- images-decode: the gate's `images_decode` check over the drop's images, against reading every file's
  bytes once (one thread).
- images-publish-<backend>: `publish_task` of the gated image task (load the staged tables, fetch, rename
  and hash every image, write the tables, card and manifest, upload and verify the public and private
  files), against copying the same image folder once with the same backend: `shutil.copytree` on the
  local backend, a parallel upload of the files with boto3 (8 threads, one PUT each) to moto's S3 server.
Each measurement runs in a fresh subprocess (its peak RSS is its own). Baselines and the local publish are
the best of 3 runs, interleaved (the disk is shared); the S3 publish runs once. `--tmp` puts every folder
(the drop, the storage locations, the publish's work folder) under another directory, e.g. a tmpfs to take
a shared disk's noise out of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from moto_server import start_moto  # noqa: E402  (bench/ is on the path: run as bench/<script>.py)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

TASK = "img-task"
CLASSES = 10
PER_FOLDER = 1000  # images per sub-folder of the drop's images folder
DUPLICATE_EVERY = 1000  # one image in this many repeats an earlier one's bytes (the leak check finds them)
PUBLISH_TARGET = 3.0


def _write_images(folder: str, start: int, stop: int, seed: int) -> None:
    """Images start..stop-1: 40×40 noise, even numbers as PNG, odd as JPEG (2-5 KB each)."""
    from PIL import Image

    rng = np.random.default_rng([seed, start])
    for i in range(start, stop):
        sub = Path(folder) / f"{i // PER_FOLDER:04d}"
        sub.mkdir(exist_ok=True)
        name = image_name(i)
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:
            shutil.copyfile(Path(folder) / image_name(i - 1), Path(folder) / name)
            continue
        image = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        if i % 2:
            image.save(Path(folder) / name, quality=85)
        else:
            image.save(Path(folder) / name)


def image_name(i: int) -> str:
    """The relative path of image i under the drop's images folder (duplicates keep their predecessor's
    format so that they stay in the same batch)."""
    ext = "jpg" if (i - (i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1)) % 2 else "png"
    return f"{i // PER_FOLDER:04d}/img-{i:07d}.{ext}"


def generate_image_drop(folder: Path, images: int, seed: int = 0) -> Path:
    """intake/bench-team/img-task/: task.yaml, data.csv (id, picture, label) and images/ (N files)."""
    drop = folder / "intake" / "bench-team" / TASK
    image_dir = drop / "images"
    image_dir.mkdir(parents=True)
    step = PER_FOLDER
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_write_images, [str(image_dir)] * len(range(0, images, step)), range(0, images, step),
                      [min(s + step, images) for s in range(0, images, step)], [seed] * len(range(0, images, step))))
    labels = np.random.default_rng(seed).integers(0, CLASSES, images)
    with open(drop / "data.csv", "w", encoding="utf-8") as out:
        out.write("pid,picture,label\n")
        out.writelines(f"p{i:07d},{image_name(i)},class-{labels[i]}\n" for i in range(images))
    (drop / "task.yaml").write_text(f"""\
task_id: {TASK}
kind: classification
title: Generated image benchmark task
owner: bench-team
license: CC0-1.0
metric: accuracy
id_column: pid
label_column: label
columns: {{picture: image}}
data: data.csv
images: images
""")
    return drop


def peak_rss() -> int:
    """High-water RSS of this process (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def bench_config(folder: Path, endpoint: str | None, bucket: str | None):  # noqa: ANN201
    from challenge.core.config import ChallengeConfig

    names = ("intake", "public", "private", "submissions")
    if endpoint:
        storage = {**{n: f"s3://{bucket}/{n}" for n in names}, "s3": {"endpoint_url": endpoint}}
    else:
        storage = {n: str(folder / n) for n in names}
    return ChallengeConfig.model_validate({"name": "bench", "title": "bench", "storage": storage,
                                           "release": {"max_duplicate_fraction": 1, "max_text_duplicate_fraction": 1}})


def _files(folder: Path) -> list[Path]:
    return sorted(Path(d) / f for d, _, names in os.walk(folder) for f in names)


# ---- measurements, each in its own subprocess ------------------------------------------------------------

def measure_read(args: dict) -> dict:
    """Baseline of the decode check: read every image's bytes once."""
    files = _files(Path(args["folder"]) / "intake" / "bench-team" / TASK / "images")
    start = time.perf_counter()
    for path in files:
        with open(path, "rb") as fh:
            fh.read()
    return {"seconds": time.perf_counter() - start}


def measure_decode(args: dict) -> dict:
    import pyarrow.csv as pa_csv

    from challenge.core.task_spec import parse_task_spec
    from challenge.core.yamlfile import read_yaml_text
    from challenge.expectations.custom_checks import CheckContext, images_decode

    drop = Path(args["folder"]) / "intake" / "bench-team" / TASK
    spec = parse_task_spec(read_yaml_text(drop / "task.yaml", "task.yaml"), "task.yaml")
    table = pa_csv.read_csv(drop / "data.csv")
    rss_before = current_rss()
    start = time.perf_counter()
    results = images_decode({"data": table}, CheckContext(spec, drop))
    seconds = time.perf_counter() - start
    if not all(r.success for r in results):
        raise SystemExit(f"images_decode failed: {results}")
    return {"seconds": seconds, "rss_before": rss_before}


def measure_gate(args: dict) -> dict:
    """Setup, not a record: gate the drop (stages the images for publish)."""
    from challenge.core.storage import open_storage
    from challenge.tasks.intake.drops import discover_drops, run_time_label
    from challenge.tasks.intake.gate import gate_drop
    from challenge.core.run_context import RunContext

    config = bench_config(Path(args["folder"]), args.get("endpoint"), args.get("bucket"))
    drops, _ = discover_drops(open_storage(config.storage.intake, args.get("endpoint")))
    start = time.perf_counter()
    outcome, _ = gate_drop(drops[0], RunContext(config), run_time_label(), force=True)
    return {"seconds": time.perf_counter() - start, "verdict": outcome.verdict, "failures": outcome.failures}


def measure_publish(args: dict) -> dict:
    from challenge.core.run_context import RunContext
    from challenge.core.storage import open_storage
    from challenge.tasks.release.opaque_ids import load_or_create_key
    from challenge.tasks.release.publish import publish_task

    config = bench_config(Path(args["folder"]), args.get("endpoint"), args.get("bucket"))
    load_or_create_key(open_storage(config.storage.private, args.get("endpoint")))
    release = f"bench-{time.time_ns()}"
    rss_before = current_rss()
    start = time.perf_counter()
    summary = publish_task(RunContext(config), TASK, release)
    return {"seconds": time.perf_counter() - start, "rss_before": rss_before, "files": summary["files"]}


def measure_copy(args: dict) -> dict:
    """Baseline of publish: copy the drop's image folder once with the same backend."""
    source = Path(args["folder"]) / "intake" / "bench-team" / TASK / "images"
    if not args.get("endpoint"):
        target = Path(args["folder"]) / f"copy-{time.time_ns()}"
        start = time.perf_counter()
        shutil.copytree(source, target)
        seconds = time.perf_counter() - start
        shutil.rmtree(target)
        return {"seconds": seconds}
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=args["endpoint"],
                          config=Config(retries={"max_attempts": 6, "mode": "standard"}, max_pool_connections=16))
    prefix = f"copy-{time.time_ns()}"
    files = _files(source)
    start = time.perf_counter()
    def put(path: Path) -> None:
        client.put_object(Bucket=args["bucket"], Key=f"{prefix}/{path.relative_to(source).as_posix()}",
                          Body=path.read_bytes())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, files))
    return {"seconds": time.perf_counter() - start}


MEASURES = {"read": measure_read, "decode": measure_decode, "gate": measure_gate, "publish": measure_publish,
            "copy": measure_copy}


def child(kind: str, args: str) -> None:
    if kind in ("gate", "publish", "decode"):
        import great_expectations  # noqa: F401  (imports are not part of the measurement)
        import prefect  # noqa: F401
    result = MEASURES[kind](json.loads(args))
    result["peak_rss"] = peak_rss()
    print(json.dumps(result))


def run_child(kind: str, args: dict) -> dict:
    env = {**os.environ, "TMPDIR": args["folder"]}  # the publish's work folder beside the drop
    out = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(args)], capture_output=True, text=True,
                         env=env)
    if out.returncode:
        raise SystemExit(f"{kind} benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(kind: str, args: dict, times: int = 3) -> dict:
    return min((run_child(kind, args) for _ in range(times)), key=lambda r: r["seconds"])


def best_interleaved(first: str, second: str, args: dict, times: int) -> tuple[dict, dict]:
    """The best of `times` runs of each, alternating (a busy moment of a shared disk hits both alike)."""
    runs = [(run_child(first, args), run_child(second, args)) for _ in range(times)]
    return min((a for a, _ in runs), key=lambda r: r["seconds"]), min((b for _, b in runs), key=lambda r: r["seconds"])


# ---- records --------------------------------------------------------------------------------------------

def record(step: str, size: int, run: dict, baseline: str, base: dict, target: float | None) -> dict:
    own = run["peak_rss"] - run["rss_before"] if "rss_before" in run else None
    return {"step": step, "size": size, "unit": "images", "seconds": run["seconds"], "baseline": baseline,
            "baseline_seconds": base["seconds"], "ratio": run["seconds"] / base["seconds"], "target": target,
            "peak_rss": run["peak_rss"], "own_rss": own, "arrow_bytes": None, "rss_ratio": None, "rss_target": None}


def measure(size: int, backends: tuple[str, ...] = ("local",), tmp_root: str | None = None) -> list[dict]:
    """Generate a drop of `size` images, then measure the decode check and the publish on each backend."""
    records = []
    with tempfile.TemporaryDirectory(prefix="challenge-bench-images-", dir=tmp_root) as tmp:
        folder = Path(tmp)
        generate_image_drop(folder, size)
        local = {"folder": str(folder)}
        records.append(record("images-decode", size, run_child("decode", local), "read every file once",
                              best_of("read", local), None))
        for backend in backends:
            args = dict(local)
            server = None
            if backend == "s3":
                server, endpoint = start_moto(folder / "moto.log")
                args.update(endpoint=endpoint, bucket="bench")
            try:
                if backend == "s3":
                    _s3_setup(folder, args)
                gate = run_child("gate", args)
                if gate["verdict"] != "pass":
                    raise SystemExit(f"gate did not pass: {gate['failures']}")
                baseline = "shutil.copytree" if backend == "local" else "boto3 parallel upload (8 threads)"
                publish, copy = best_interleaved("publish", "copy", args, 3 if backend == "local" else 1)
                if backend == "s3":
                    copy = min([copy, run_child("copy", args), run_child("copy", args)], key=lambda r: r["seconds"])
                records.append(record(f"images-publish-{backend}", size, publish, baseline, copy, PUBLISH_TARGET))
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(timeout=30)
    return records


def _s3_setup(folder: Path, args: dict) -> None:
    """The bucket, and the drop uploaded to its intake (not timed)."""
    import boto3

    from challenge.core.storage import open_storage, upload_tree

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    boto3.client("s3", endpoint_url=args["endpoint"]).create_bucket(Bucket=args["bucket"])
    intake = open_storage(f"s3://{args['bucket']}/intake", args["endpoint"])
    upload_tree(intake, folder / "intake" / "bench-team" / TASK, f"bench-team/{TASK}")


def report(records: list[dict]) -> None:
    mb = 1 << 20
    for r in records:
        target = f"target <= {r['target']:g}x" if r["target"] else "no target"
        own = f", own RSS {r['own_rss'] / mb:.0f} MiB" if r["own_rss"] is not None else ""
        print(f"{r['step']:<22} {r['size']:>7,} images: {r['seconds']:7.2f} s vs {r['baseline']} "
              f"{r['baseline_seconds']:6.2f} s = {r['ratio']:5.2f}x ({target}); peak RSS {r['peak_rss'] / mb:.0f} MiB{own}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backend", nargs="+", choices=["local", "s3"], default=["local"])
    parser.add_argument("--tmp", help="folder for the generated drop and the storage locations (e.g. /dev/shm)")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        child(*args.child)
        return
    for size in args.images:
        records = measure(size, tuple(args.backend), args.tmp)
        report(records)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
