"""Turn staged datasets into an immutable, versioned release (SPEC §7).

build_task_release writes one task's public and private files into local
folders; upload_and_verify puts them in storage and checks sizes and
checksums; only when every task is up does finish_release write
`<public>/latest.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.config import ChallengeConfig
from challenge.errors import ChallengeError
from challenge.tasks.cards import croissant_metadata, dataset_card
from challenge.tasks.intake import list_staged
from challenge.tasks.leakage import LeakColumns, LeakFinding, duplicate_records, find_leaks
from challenge.tasks.opaque_ids import load_key, opaque_ids
from challenge.tasks.releases import COMPLETE_MARKER, LATEST_KEY, card_key
from challenge.tasks.retry import transient
from challenge.tasks.splitting import SplitResult, split_classification, split_matching
from challenge.storage import TRANSFER_THREADS, Storage, download_many, file_digest, open_location, upload_tree
from challenge.task_spec import Modality, TaskSpec, snake_case

RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PRIVATE_NOTES = ("classes_only_in_train",)


class PublishError(ChallengeError):
    """A release cannot be made; the message says why and what to do."""


def default_release_name(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")


def check_release_name(name: str) -> str:
    if not RELEASE_NAME.match(name) or ".." in name:
        raise PublishError(
            f"release name {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(no '/' or other path characters), at most 64"
        )
    return name


@dataclass
class StagedTask:
    spec: TaskSpec
    prefix: str
    tables: dict[str, pa.Table]
    fingerprint: str


def load_staged_task(private: Storage, task_id: str, workdir: Path) -> StagedTask:
    """The current staged version of `task_id`, read into Arrow tables."""
    pointer_key = f"staged/{task_id}/current.json"
    if not private.exists(pointer_key):
        raise PublishError(
            f"task '{task_id}' is not staged: it has not passed the quality gate. Run `challenge collect` "
            f"and read its report under {private.uri_for(f'reports/{task_id}')}"
        )
    pointer = json.loads(private.read_bytes(pointer_key))
    meta = json.loads(private.read_bytes(f"{pointer['prefix']}/staged.json"))
    spec = TaskSpec.model_validate(meta["spec"])
    tables = {}
    for name in meta["tables"]:
        local = workdir / "staged" / task_id / f"{name}.parquet"
        private.download_file(f"{pointer['prefix']}/{name}.parquet", local)
        tables[name] = pq.read_table(local)
    return StagedTask(spec, pointer["prefix"], tables, pointer["fingerprint"])


@dataclass
class TaskRelease:
    """One task's release, built in local folders and ready to upload."""

    task_id: str
    kind: str
    public_dir: Path
    private_dir: Path
    counts: dict[str, int]
    classes: int | None
    notes: dict[str, Any] = field(default_factory=dict)
    leaks: list[LeakFinding] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def _csv_ready(table: pa.Table) -> pa.Table:
    """CSV has no dictionary type: write categorical columns as their strings."""
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def write_table_files(table: pa.Table, folder: Path, name: str) -> dict[str, Any]:
    """<name>.csv and <name>.parquet with the same rows and column order."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{name}.parquet", compression="zstd", row_group_size=256_000)
    pa_csv.write_csv(_csv_ready(table), folder / f"{name}.csv")
    return {"rows": table.num_rows, "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema]}


def _publish_images(table: pa.Table, spec: TaskSpec, private: Storage, staged_prefix: str, out: Path) -> pa.Table:
    """Copy each row's image to images/<opaque id>[-<column>]<ext> and point the table at it."""
    image_columns = [snake_case(c) for c in spec.columns_of(Modality.image)]
    for column in image_columns:
        suffix = "" if len(image_columns) == 1 else f"-{column}"
        originals = table[column].to_pylist()
        ids = table["id"].to_pylist()
        renamed = []
        jobs = []
        for opaque, original in zip(ids, originals):
            if original is None:
                renamed.append(None)
                continue
            name = f"images/{opaque}{suffix}{PurePosixPath(original).suffix.lower()}"
            renamed.append(name)
            jobs.append((f"{staged_prefix}/images/{original}", out / name))
        download_many(private, jobs)
        table = table.set_column(table.column_names.index(column), column, pa.array(renamed, pa.string()))
    return table


def _image_digests(table: pa.Table, columns: list[str], folder: Path) -> pa.Table:
    """Replace image paths by the SHA-256 of the image, so duplicates are found by content."""
    for column in columns:
        digests = [sha256_file(folder / p) if p else None for p in table[column].to_pylist()]
        table = table.set_column(table.column_names.index(column), column, pa.array(digests, pa.string()))
    return table


def _leak_gate(findings: list[LeakFinding], config: ChallengeConfig, task_id: str) -> None:
    """Refuse the release when a refusable finding is above its limit in challenge.yaml."""
    limits = {"exact_duplicate_rows": ("max_duplicate_fraction", config.release.max_duplicate_fraction),
              "near_duplicate_records": ("max_text_duplicate_fraction", config.release.max_text_duplicate_fraction),
              "identifying_column_duplicates": ("max_text_duplicate_fraction", config.release.max_text_duplicate_fraction)}
    crossed = [f for f in findings if f.refusable and f.fraction > limits[f.check][1]]
    if crossed:
        lines = "; ".join(f"{f.detail} ({f.fraction:.1%} of test > release.{limits[f.check][0]} "
                          f"{limits[f.check][1]:.1%})" for f in crossed)
        raise PublishError(
            f"task '{task_id}' leaks between train and test: {lines}. Deduplicate the drop (remove the test "
            "records that repeat train records), or raise the limit in challenge.yaml"
        )


def _leak_columns(spec: TaskSpec, config: ChallengeConfig, features: list[str]) -> LeakColumns:
    return LeakColumns(features, [snake_case(c) for c in spec.columns_of(Modality.text)],
                       [snake_case(c) for c in spec.identifying_columns()], config.release.near_duplicate_similarity)


def _write_answers(ids: pa.Array, labels: pa.Array, test: np.ndarray, public: np.ndarray, out: Path) -> str:
    """answers.parquet (id, label, usage) for the test rows (already in id order); returns its SHA-256."""
    mask = pa.array(test)
    answers = pa.table({
        "id": pc.filter(ids, mask),
        "label": pc.filter(labels, mask),
        "usage": pc.filter(pa.array(np.where(public, "public", "private")), mask),
    })
    pq.write_table(answers, out / "answers.parquet", compression="zstd")
    return sha256_file(out / "answers.parquet")


@dataclass
class _Built:
    split: SplitResult
    counts: dict[str, int]
    classes: int
    class_counts: dict[str, int]  # train rows (pairs) per class: nothing about the test labels
    files: dict[str, dict[str, Any]]
    leaks: list[LeakFinding]
    answers_sha256: str


def _id_order(numbers: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Row order that sorts the opaque ids (their numbers share one width)."""
    order = np.argsort(numbers, kind="stable")
    return pa.array(order), order


def _classification_files(staged: StagedTask, config: ChallengeConfig, key: bytes, private: Storage,
                          public_dir: Path, private_dir: Path) -> _Built:
    spec, data = staged.spec, staged.tables["data"]
    split = split_classification(data["id"], data["label"], spec.split.test_fraction,
                                 config.policy.public_fraction, spec.split.seed)
    published, numbers = opaque_ids(data["id"], key, f"{spec.task_id}/rows", "")
    order, order_np = _id_order(numbers)
    test_mask, public_mask = split.test[order_np], split.public[order_np]
    table = data.set_column(0, "id", published).take(order)  # every filtered table below stays in id order
    pq.write_table(pa.table({"id": table["id"], "original_id": data["id"].take(order)}), private_dir / "id_map.parquet")
    if spec.columns_of(Modality.image):
        table = _publish_images(table, spec, private, staged.prefix, public_dir)
    train, test = table.filter(pa.array(~test_mask)), table.filter(pa.array(test_mask))
    features = [c for c in table.column_names if c not in ("id", "label")]
    images = [snake_case(c) for c in spec.columns_of(Modality.image)]
    with ThreadPoolExecutor(max_workers=1) as pool:  # leak checks run while the files are written locally
        leak_job = pool.submit(find_leaks, _image_digests(train, images, public_dir),
                               _image_digests(test, images, public_dir), _leak_columns(spec, config, features))
        files = {"train": write_table_files(train, public_dir, "train"),
                 "test": write_table_files(test.drop_columns(["label"]), public_dir, "test")}
        leaks = leak_job.result()
    _leak_gate(leaks, config, spec.task_id)  # before anything is uploaded
    answers_sha = _write_answers(table["id"], table["label"], test_mask, public_mask, private_dir)
    label_counts = pc.value_counts(train["label"]).to_pylist()
    majority = min(label_counts, key=lambda r: (-r["counts"], r["values"]))["values"]
    pa_csv.write_csv(pa.table({"id": test["id"], "label": pa.array([majority] * test.num_rows, pa.string())}),
                     public_dir / "sample_submission.csv")
    counts = {"train": train.num_rows, "test": test.num_rows,
              "test_public": int(split.public.sum()), "test_private": int(split.test.sum() - split.public.sum())}
    classes = len(pc.unique(data["label"]))
    train_class_counts = {r["values"]: r["counts"] for r in label_counts}  # train only: test labels stay hidden
    return _Built(split, counts, classes, train_class_counts, files, leaks, answers_sha)


def _matching_files(staged: StagedTask, config: ChallengeConfig, key: bytes, private: Storage,
                    public_dir: Path, private_dir: Path) -> _Built:
    spec, records, pairs = staged.spec, staged.tables["records"], staged.tables["pairs"]
    split = split_matching(pairs["left_id"], pairs["right_id"], pairs["label"], records["id"],
                           spec.split.test_fraction, config.policy.public_fraction, spec.split.seed)
    record_ids, record_numbers = opaque_ids(records["id"], key, f"{spec.task_id}/records", "r")
    pair_keys = pc.binary_join_element_wise(pairs["left_id"], pairs["right_id"], "\x1f")
    pair_ids, pair_numbers = opaque_ids(pair_keys, key, f"{spec.task_id}/pairs", "p")
    record_order, _ = _id_order(record_numbers)
    pair_order, pair_order_np = _id_order(pair_numbers)
    pq.write_table(pa.table({"id": record_ids, "original_id": records["id"]}).take(record_order),
                   private_dir / "id_map.parquet")
    pq.write_table(pa.table({"id": pair_ids, "left_original": pairs["left_id"], "right_original": pairs["right_id"]})
                   .take(pair_order), private_dir / "pair_id_map.parquet")
    table = records.set_column(0, "id", record_ids).take(record_order)
    if spec.columns_of(Modality.image):
        table = _publish_images(table, spec, private, staged.prefix, public_dir)
    left = record_ids.take(pc.index_in(pairs["left_id"], value_set=records["id"]))
    right = record_ids.take(pc.index_in(pairs["right_id"], value_set=records["id"]))
    published_pairs = pa.table({"id": pair_ids, "left_id": left, "right_id": right, "label": pairs["label"]}).take(pair_order)
    test_mask, public_mask = split.test[pair_order_np], split.public[pair_order_np]
    train = published_pairs.filter(pa.array(~test_mask & ~split.dropped[pair_order_np]))
    test = published_pairs.filter(pa.array(test_mask))
    test_records = pc.unique(pa.chunked_array([test["left_id"], test["right_id"]]))
    train_records = pc.unique(pa.chunked_array([train["left_id"], train["right_id"]]))
    seen = pc.sum(pc.is_in(test_records, value_set=train_records)).as_py() or 0
    split.notes["test_records_seen_in_train_pairs"] = round(seen / max(len(test_records), 1), 4)
    features = [c for c in table.column_names if c != "id"]
    images = [snake_case(c) for c in spec.columns_of(Modality.image)]
    leaks = duplicate_records(_image_digests(table, images, public_dir), train_records, test_records,
                              _leak_columns(spec, config, features))
    _leak_gate(leaks, config, spec.task_id)  # before anything is uploaded
    files = {"records": write_table_files(table, public_dir, "records"),
             "train": write_table_files(train, public_dir, "train"),
             "test": write_table_files(test.drop_columns(["label"]), public_dir, "test")}
    answers_sha = _write_answers(published_pairs["id"], pc.cast(published_pairs["label"], pa.string()),
                                 test_mask, public_mask, private_dir)
    pa_csv.write_csv(pa.table({"id": test["id"], "label": pa.array(["0"] * test.num_rows, pa.string())}),
                     public_dir / "sample_submission.csv")
    counts = {"records": records.num_rows, "train": train.num_rows, "test": test.num_rows,
              "test_public": int(split.public.sum()), "test_private": int(split.test.sum() - split.public.sum()),
              "dropped_across_groups": int(split.dropped.sum())}
    train_class_counts = {str(r["values"]): r["counts"] for r in pc.value_counts(train["label"]).to_pylist()}
    return _Built(split, counts, 2, train_class_counts, files, leaks, answers_sha)


def build_task_release(
    staged: StagedTask, config: ChallengeConfig, key: bytes, private: Storage, release: str, out: Path
) -> TaskRelease:
    """Split, de-identify and write one task's public and private files under `out`."""
    spec = staged.spec
    public_dir, private_dir = out / "public" / spec.task_id, out / "private" / spec.task_id
    public_dir.mkdir(parents=True)
    private_dir.mkdir(parents=True)
    make = _classification_files if spec.kind == "classification" else _matching_files
    built = make(staged, config, key, private, public_dir, private_dir)
    split, counts, files = built.split, built.counts, built.files
    (public_dir / "README.md").write_text(dataset_card(spec, release, counts, built.class_counts, files), encoding="utf-8")
    today = datetime.now(timezone.utc).date().isoformat()
    digests: dict[Path, str] = {}
    croissant = croissant_metadata(spec, release, _file_entries(public_dir, files, digests), counts, today)
    (public_dir / "croissant.json").write_text(json.dumps(croissant, indent=2), encoding="utf-8")
    manifest = {
        "task_id": spec.task_id, "kind": spec.kind, "release": release, "metric": spec.metric, "title": spec.title,
        "columns": {snake_case(name): {"modality": column.modality.value, "description": column.description}
                    for name, column in spec.columns.items()},
        "staged_fingerprint": staged.fingerprint,
        "split": {"method": split.notes.get("method"), "seed": spec.split.seed, "test_fraction": spec.split.test_fraction,
                  "public_fraction": config.policy.public_fraction, "counts": counts,
                  # which classes have no test row is a fact about the test labels: it stays private
                  "notes": {k: v for k, v in split.notes.items() if k not in PRIVATE_NOTES}},
        "leak_checks": [f.public() for f in built.leaks],
        "answers_sha256": built.answers_sha256,
        "files": _file_entries(public_dir, files, digests),
    }
    (public_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    # the organizer's copy also says how many repeats carry the train row's label (a fact about test labels)
    (private_dir / "leak_checks.json").write_text(json.dumps([f.__dict__ for f in built.leaks], indent=2), encoding="utf-8")
    return TaskRelease(spec.task_id, spec.kind, public_dir, private_dir, counts, built.classes, dict(split.notes), built.leaks)


def _file_entries(public_dir: Path, tables: dict[str, dict[str, Any]], digests: dict[Path, str]) -> list[dict[str, Any]]:
    """Every file but the manifest, with bytes, SHA-256 (memoized in `digests`) and table rows/schema."""
    entries = []
    for path in sorted(p for p in public_dir.rglob("*") if p.is_file() and p.name != "manifest.json"):
        if path not in digests:
            digests[path] = sha256_file(path)
        entry: dict[str, Any] = {"path": path.relative_to(public_dir).as_posix(), "bytes": path.stat().st_size,
                                 "sha256": digests[path]}
        stem = path.stem if path.suffix in (".csv", ".parquet") else None
        if stem in tables:
            entry.update(tables[stem])
        entries.append(entry)
    return entries


def upload_and_verify(storage: Storage, local_dir: Path, prefix: str) -> list[str]:
    """Upload every file under `local_dir` concurrently, then check each object's size and checksum."""
    keys = upload_tree(storage, local_dir, prefix)
    files = [local_dir / k[len(prefix) + 1:] for k in keys]

    def verify(key: str, path: Path) -> None:
        info = storage.head(key)
        if info is None or info.size != path.stat().st_size:
            raise PublishError(f"{storage.uri_for(key)}: uploaded object is missing or has the wrong size")
        if "-" not in info.version:  # a single-part object's version is the MD5 of its bytes
            if info.version != file_digest(path):
                raise PublishError(f"{storage.uri_for(key)}: uploaded object's MD5 differs from the built file")
            return
        digest = hashlib.sha256()
        with storage.open_read(key) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256_file(path):
            raise PublishError(f"{storage.uri_for(key)}: uploaded object's SHA-256 differs from the built file")

    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(verify, keys, files))
    return keys


def release_exists(public: Storage, release: str) -> bool:
    """A release is complete once its release.json marker is written."""
    return public.exists(f"releases/{release}/{COMPLETE_MARKER}")


def clear_incomplete(storage: Storage, prefix: str) -> int:
    """Remove what an interrupted run left under `prefix`; returns how many objects."""
    keys = [info.key for info in storage.list(prefix + "/")]
    for key in keys:
        storage.delete(key)
    return len(keys)


def finish_release(public: Storage, release: str, task_ids: list[str]) -> dict[str, Any]:
    """Write the release marker, then latest.json (last: the release becomes visible)."""
    published_at = datetime.now(timezone.utc).isoformat()
    marker = {"release": release, "published_at": published_at, "tasks": sorted(task_ids)}
    public.write_bytes(f"releases/{release}/{COMPLETE_MARKER}", json.dumps(marker, indent=2).encode())
    public.write_bytes(LATEST_KEY, json.dumps(marker, indent=2).encode())
    return marker


# --- Prefect tasks -----------------------------------------------------------


def open_locations(config: ChallengeConfig) -> tuple[Storage, Storage]:
    """The public and private storage locations of the challenge."""
    return open_location(config, "public"), open_location(config, "private")


def _finding_line(finding: LeakFinding) -> str:
    """A leak finding as the organizer reads it (with label agreement, which the manifest leaves out)."""
    agreement = f" ({finding.label_agreement})" if finding.label_agreement else ""
    return finding.detail + agreement + ("" if finding.refusable else " [reported; never refuses]")


def publish_task(config: ChallengeConfig, task_id: str, release: str) -> dict[str, Any]:
    """Build one task's release files, upload them and verify them; returns its summary."""
    public, private = open_locations(config)
    key = load_key(private)  # read here, never passed around: task parameters show in the Prefect UI
    with tempfile.TemporaryDirectory(prefix="challenge-release-") as tmp:
        staged = load_staged_task(private, task_id, Path(tmp))
        built = build_task_release(staged, config, key, private, release, Path(tmp) / "out")
        upload_and_verify(private, built.private_dir, f"releases/{release}/{task_id}")
        keys = upload_and_verify(public, built.public_dir, f"releases/{release}/{task_id}")
        return {
            "task_id": task_id, "kind": built.kind, "counts": built.counts, "classes": built.classes,
            "files": len(keys), "notes": built.notes, "leaks": [_finding_line(f) for f in built.leaks],
            "card": public.uri_for(card_key(release, task_id)),
        }


@task(name="publish-task", task_run_name="publish-{task_id}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=transient)
def publish_task_task(config: ChallengeConfig, task_id: str, release: str) -> dict[str, Any]:
    """Prefect wrapper: one task run per challenge task (uploads run in threads inside it)."""
    summary = publish_task(config, task_id, release)
    get_run_logger().info("%s: %s", task_id, summary["counts"])
    return summary


def prepare_release(config: ChallengeConfig, release: str, task_ids: list[str] | None) -> dict[str, str | None]:
    """Check the release name and the tasks; clear what an interrupted run of this release left.

    Returns task id → kind (None for tasks staged before kinds were recorded).
    """
    public, private = open_locations(config)
    check_release_name(release)
    if release_exists(public, release):
        raise PublishError(
            f"release '{release}' already exists at {public.uri_for(f'releases/{release}')}; "
            "releases are immutable: choose another name"
        )
    staged = list_staged(private)
    selected = sorted(set(task_ids)) if task_ids else sorted(staged)
    missing = [t for t in selected if t not in staged]
    if missing:
        raise PublishError(
            f"cannot publish {', '.join(missing)}: not staged (never passed the quality gate). "
            f"Run `challenge collect` and read the reports under {private.uri_for('reports')}"
        )
    if not selected:
        raise PublishError(f"nothing to publish: no staged task under {private.uri_for('staged')}; run `challenge collect` first")
    cleared = clear_incomplete(public, f"releases/{release}") + clear_incomplete(private, f"releases/{release}")
    if cleared:
        get_logger().warning("release %s was left incomplete by an earlier run: removed %d object(s), restarting", release, cleared)
    return {task_id: staged[task_id].get("kind") for task_id in selected}


def get_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, else the module logger."""
    try:
        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)
