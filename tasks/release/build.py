"""Build one task's release in local folders: split, published ids, table files, answer key, leak checks,
card, Croissant and manifest (SPEC §7). A step: no storage and no Prefect inside; the staged task comes
in as Arrow tables, and images come through the `fetch_images` function the caller passes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import Manifest
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError
from challenge.core.memory import trim
from challenge.core.task_spec import Modality, TaskSpec, snake_case
from challenge.tasks.intake.staged import StagedTask
from challenge.tasks.release.cards import card_settings, croissant_metadata, dataset_card
from challenge.tasks.release.id_order import IdOrderSpill
from challenge.tasks.release.images import ImageFetcher, image_digests, publish_images, sha256_file
from challenge.tasks.release.leaks.checks import LeakColumns, LeakFinding, duplicate_records, leak_findings
from challenge.tasks.release.leaks.hashes import RecordHashes, hash_records
from challenge.tasks.release.opaque_ids import opaque_ids
from challenge.tasks.release.splitting import SplitResult, split_classification, split_matching

PRIVATE_NOTES = ("classes_only_in_train",)
BATCH_ROWS = 1 << 16  # staged rows read, hashed and spilled at a time
ROW_GROUP_ROWS = 256_000
RELEASE_FORMAT = 2  # bump when the files a build writes change for the same inputs (tasks are then rebuilt)


class PublishError(ChallengeError):
    """A release cannot be made; the message says why and what to do."""


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


def write_table_files(table: pa.Table, folder: Path, name: str) -> dict[str, Any]:
    """<name>.csv and <name>.parquet with the same rows and column order."""
    files = TableFiles(folder, name, table.schema)
    files.write(table)
    return files.close()


class TableFiles:
    """<name>.parquet and <name>.csv written part by part, with the same rows and column order."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema):
        folder.mkdir(parents=True, exist_ok=True)
        self.schema, self.rows = schema, 0
        self.parquet = pq.ParquetWriter(folder / catalog.table_file(name), schema, compression="zstd")
        self.csv = pa_csv.CSVWriter(folder / catalog.table_file(name, "csv"), schema)

    def write(self, table: pa.Table) -> None:
        self.parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.csv.write_table(table)
        self.rows += table.num_rows

    def close(self) -> dict[str, Any]:
        self.parquet.close()
        self.csv.close()
        return {"rows": self.rows, "schema": [{"name": f.name, "type": str(f.type)} for f in self.schema]}


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
    pq.write_table(answers, out / catalog.ANSWERS, compression="zstd")
    return sha256_file(out / catalog.ANSWERS)


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


def _inverse(numbers: np.ndarray) -> np.ndarray:
    """The row of each id number (numbers: a permutation of 0..n-1), without a sort."""
    order = np.empty(len(numbers), np.int64)
    order[numbers] = np.arange(len(numbers))
    return order


@dataclass(frozen=True)
class TaskFolders:
    """Where one task's release files are built: its public and private folders, and the SHA-256 of each
    file written there (by path), memoized so that each image is hashed once, when it is fetched."""

    public: Path
    private: Path
    digests: dict[Path, str]


def _classification_files(staged: StagedTask, config: ChallengeConfig, key: bytes, fetch_images: ImageFetcher,
                          folders: TaskFolders) -> _Built:
    """Streamed: the split, the ids and the answers from the id and label columns alone; then the staged
    rows batch by batch into fixed-size leak hashes and an id-order spill; the leak checks on the hashes;
    then the train and test files written bucket by bucket in id order."""
    public_dir, private_dir, digests = folders.public, folders.private, folders.digests
    spec = staged.spec
    keys = staged.table("data", ["id", "label"])
    ids, labels = keys["id"].combine_chunks(), keys["label"].combine_chunks()
    del keys
    split = split_classification(ids, labels, spec.split.test_fraction, config.policy.public_fraction, spec.split.seed)
    published, numbers = opaque_ids(ids, key, f"{spec.task_id}/rows", "")
    order = _inverse(numbers)
    test_by_number = split.test[order]
    pq.write_table(pa.table({"id": published.take(order), "original_id": ids.take(order)}), private_dir / catalog.ID_MAP)
    del ids
    answers_sha = _write_answers(published.take(order), labels.take(order), test_by_number, split.public[order],
                                 private_dir)
    del order
    label_counts = pc.value_counts(pc.filter(labels, pa.array(~split.test))).to_pylist()
    encoded = pc.dictionary_encode(labels)
    label_codes, classes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False)), len(encoded.dictionary)
    del labels, encoded
    images = [snake_case(c) for c in spec.columns_of(Modality.image)]
    source = pq.ParquetFile(staged.files["data"])
    features = [c for c in source.schema_arrow.names if c not in ("id", "label")]
    columns = _leak_columns(spec, config, features)
    spill = IdOrderSpill(public_dir.parent.parent / f"spill-{spec.task_id}", len(numbers))
    hashes, row = RecordHashes.allocate(len(numbers), columns.identifying), 0
    with ThreadPoolExecutor(max_workers=1) as pool:  # a batch is hashed while it is spilled
        for batch in source.iter_batches(batch_size=BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            table = table.set_column(0, "id", published.slice(row, table.num_rows))
            if images:
                table = publish_images(table, spec, fetch_images, public_dir, digests)
            hashed = pool.submit(hash_records, image_digests(table, images, public_dir, digests) if images else table,
                                 columns)
            spill.add(table, numbers[row:row + table.num_rows])
            hashes.put(row, hashed.result())
            row += table.num_rows
    del published, numbers
    trim()  # the batches' work arrays: before the hashes' checks and the buckets allocate
    majority = min(label_counts, key=lambda r: (-r["counts"], r["values"]))["values"]
    # The leak checks run before the files are written, not beside them: their work arrays and the
    # buckets' would add up (measured at 1M rows: 390 against 318 MiB of own peak, for 0.7 s of 8 saved);
    # and a release that leaks is refused before any file is written.
    leaks = leak_findings(hashes, split.test, label_codes, columns)
    _leak_gate(leaks, config, spec.task_id)
    del hashes
    trim()
    train = test = sample = None
    for table, bucket_numbers in spill.buckets():
        in_test = pa.array(test_by_number[bucket_numbers])
        train_part, test_part = table.filter(pc.invert(in_test)), table.filter(in_test).drop_columns(["label"])
        if train is None:
            train = TableFiles(public_dir, "train", train_part.schema)
            test = TableFiles(public_dir, "test", test_part.schema)
            sample = pa_csv.CSVWriter(public_dir / catalog.SAMPLE_SUBMISSION,
                                      pa.schema([("id", pa.string()), ("label", pa.string())]))
        train.write(train_part)
        test.write(test_part)
        sample.write_table(pa.table({"id": test_part["id"],
                                     "label": pa.array([majority] * test_part.num_rows, pa.string())}))
        trim()
    assert train is not None and test is not None and sample is not None  # a staged task has rows
    files = {"train": train.close(), "test": test.close()}
    sample.close()
    counts = {"train": files["train"]["rows"], "test": files["test"]["rows"],
              "test_public": int(split.public.sum()), "test_private": int(split.test.sum() - split.public.sum())}
    train_class_counts = {r["values"]: r["counts"] for r in label_counts}  # train only: test labels stay hidden
    return _Built(split, counts, classes, train_class_counts, files, leaks, answers_sha)


def _matching_files(staged: StagedTask, config: ChallengeConfig, key: bytes, fetch_images: ImageFetcher,
                    folders: TaskFolders) -> _Built:
    public_dir, private_dir, digests = folders.public, folders.private, folders.digests
    spec, records, pairs = staged.spec, staged.table("records"), staged.table("pairs")
    split = split_matching(pairs, records["id"], spec.split.test_fraction, config.policy.public_fraction, spec.split.seed)
    record_ids, record_numbers = opaque_ids(records["id"], key, f"{spec.task_id}/records", "r")
    pair_keys = pc.binary_join_element_wise(pairs["left_id"], pairs["right_id"], "\x1f")
    pair_ids, pair_numbers = opaque_ids(pair_keys, key, f"{spec.task_id}/pairs", "p")
    record_order, _ = _id_order(record_numbers)
    pair_order, pair_order_np = _id_order(pair_numbers)
    pq.write_table(pa.table({"id": record_ids, "original_id": records["id"]}).take(record_order),
                   private_dir / catalog.ID_MAP)
    pq.write_table(pa.table({"id": pair_ids, "left_original": pairs["left_id"], "right_original": pairs["right_id"]})
                   .take(pair_order), private_dir / catalog.PAIR_ID_MAP)
    table = records.set_column(0, "id", record_ids).take(record_order)
    if spec.columns_of(Modality.image):
        table = publish_images(table, spec, fetch_images, public_dir, digests)
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
    leaks = duplicate_records(image_digests(table, images, public_dir, digests), train_records, test_records,
                              _leak_columns(spec, config, features))
    _leak_gate(leaks, config, spec.task_id)  # before anything is uploaded
    files = {"records": write_table_files(table, public_dir, "records"),
             "train": write_table_files(train, public_dir, "train"),
             "test": write_table_files(test.drop_columns(["label"]), public_dir, "test")}
    answers_sha = _write_answers(published_pairs["id"], pc.cast(published_pairs["label"], pa.string()),
                                 test_mask, public_mask, private_dir)
    pa_csv.write_csv(pa.table({"id": test["id"], "label": pa.array(["0"] * test.num_rows, pa.string())}),
                     public_dir / catalog.SAMPLE_SUBMISSION)
    counts = {"records": records.num_rows, "train": train.num_rows, "test": test.num_rows,
              "test_public": int(split.public.sum()), "test_private": int(split.test.sum() - split.public.sum()),
              "dropped_across_groups": int(split.dropped.sum())}
    train_class_counts = {str(r["values"]): r["counts"] for r in pc.value_counts(train["label"]).to_pylist()}
    return _Built(split, counts, 2, train_class_counts, files, leaks, answers_sha)


def build_inputs(staged_fingerprint: str, config: ChallengeConfig) -> dict[str, Any]:
    """Everything a task's release files depend on besides the id key: the staged version (its data and
    task.yaml, seed included), the challenge's public fraction and leak settings, the build's format.
    A task whose inputs equal those of its files in the current release is carried over as it is."""
    return {"format": RELEASE_FORMAT, "staged_fingerprint": staged_fingerprint,
            "public_fraction": config.policy.public_fraction, "release": config.release.model_dump(mode="json"),
            "card": card_settings(config)}


def build_task_release(
    staged: StagedTask, config: ChallengeConfig, key: bytes, fetch_images: ImageFetcher, release: str, out: Path
) -> TaskRelease:
    """Split, de-identify and write one task's public and private files under `out` (images through
    `fetch_images`)."""
    spec = staged.spec
    public_dir, private_dir = out / "public" / spec.task_id, out / "private" / spec.task_id
    public_dir.mkdir(parents=True)
    private_dir.mkdir(parents=True)
    make = _classification_files if spec.kind == "classification" else _matching_files
    digests: dict[Path, str] = {}  # SHA-256 by local path: each image is hashed once, when it is fetched
    built = make(staged, config, key, fetch_images, TaskFolders(public_dir, private_dir, digests))
    split, counts, files = built.split, built.counts, built.files
    (public_dir / catalog.CARD).write_text(dataset_card(spec, release, counts, built.class_counts, files, config),
                                           encoding="utf-8")
    today = datetime.now(timezone.utc).date().isoformat()
    croissant = croissant_metadata(spec, release, _file_entries(public_dir, files, digests), counts, today)
    (public_dir / catalog.CROISSANT).write_bytes(catalog.json_bytes(croissant))
    manifest = Manifest.model_validate({
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
        "build_inputs": build_inputs(staged.fingerprint, config),
    })
    (public_dir / catalog.MANIFEST).write_bytes(manifest.to_json())
    # the organizer's copy also says how many repeats carry the train row's label (a fact about test labels)
    (private_dir / catalog.LEAK_CHECKS).write_bytes(catalog.json_bytes([f.__dict__ for f in built.leaks]))
    return TaskRelease(spec.task_id, spec.kind, public_dir, private_dir, counts, built.classes, dict(split.notes), built.leaks)


def _file_entries(public_dir: Path, tables: dict[str, dict[str, Any]], digests: dict[Path, str]) -> list[dict[str, Any]]:
    """Every file but the manifest, with bytes, SHA-256 (memoized in `digests`) and table rows/schema."""
    entries = []
    for path in sorted(p for p in public_dir.rglob("*") if p.is_file() and p.name != catalog.MANIFEST):
        if path not in digests:
            digests[path] = sha256_file(path)
        entry: dict[str, Any] = {"path": path.relative_to(public_dir).as_posix(), "bytes": path.stat().st_size,
                                 "sha256": digests[path]}
        stem = path.stem if path.suffix in (".csv", ".parquet") else None
        if stem in tables:
            entry.update(tables[stem])
        entries.append(entry)
    return entries

