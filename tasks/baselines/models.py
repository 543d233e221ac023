"""Baselines: what a participant gets from scikit-learn in a few lines, per task.

A baseline is trained like a participant would train one: it reads only the
`public` location (the latest release's manifest, Parquet
tables, images and sample submission, downloaded into a temporary folder and
checked against the manifest's SHA-256), never `private`. Its predictions
go through the normal submission path as the reserved team `baseline`
(`<submissions>/baseline/<task_id>/baseline-<release>.csv`), so they are
admitted, validated, scored and shown on the leaderboard like any upload.

- classification: a ColumnTransformer over the declared modalities (TF-IDF
  of character n-grams for text, one-hot for categorical, impute + scale for
  numeric, small grayscale pixels for images) feeding a LogisticRegression;
- matching: per-column similarities of the two records of each pair (token
  Jaccard and SequenceMatcher ratio on text, absolute and relative
  difference on numeric, equality on categorical, pixel distance on images)
  feeding a HistGradientBoostingClassifier.

Everything is seeded: two runs write byte-identical CSVs. The validation
score is the task's metric on a seeded, held-out fifth of train.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from challenge.core import catalog
from challenge.core.catalog import ColumnInfo, Manifest
from challenge.core.errors import BaselineError
from challenge.core.metrics import score
from challenge.core.records import BaselineSummary
from challenge.core.run_context import RunContext
from challenge.core.storage import Storage, download_many, file_digest
from challenge.core.task_spec import Modality
from challenge.tasks.baselines.features import (
    as_numbers,
    as_strings,
    classification_model,
    feature_frame,
    has_text,
    matching_model,
    pair_features,
    positions_of,
)
from challenge.tasks.retry import transient
from challenge.tasks.scoring.submissions import BASELINE_TEAM

SEED = 0
VALIDATION_FRACTION = 0.2
TABLES = {"classification": ("train", "test"), "matching": ("records", "train", "test")}
NOT_FEATURES = ("id", "label", "left_id", "right_id")


@dataclass(frozen=True)
class ReleasedTask:
    """One task of a release, downloaded from `public` into `folder` as a participant sees it."""

    release: str
    task_id: str
    kind: str
    metric: str
    modalities: dict[str, Modality]  # feature column (as published) → modality, in table order
    folder: Path
    built_in: str | None = None  # the release its files were built in (earlier when carried over unchanged)


@dataclass(frozen=True)
class Baseline:
    """A trained baseline's predictions (CSV bytes in the sample submission's format) and what made them."""

    task_id: str
    release: str
    kind: str
    metric: str
    model: str
    validation_score: float
    train_rows: int
    test_rows: int
    seconds: float
    csv: bytes


# --- download, like a participant -------------------------------------------


def select_tasks(requested: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """The requested task ids (default: every task of the release); an unknown id is an error naming the known ones."""
    if not requested:
        return sorted(known)
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise BaselineError(f"unknown task id(s): {', '.join(unknown)}; the latest release has "
                            f"{', '.join(sorted(known)) or 'no task'}")
    return sorted(set(requested))


def download_task(public: Storage, release: str, task_id: str, folder: Path) -> ReleasedTask:
    """Download what a baseline needs of one released task into `folder` (streamed to disk, checked
    against the manifest's SHA-256): manifest, Parquet tables, images, sample submission."""
    prefix = catalog.task_prefix(release, task_id)
    folder.mkdir(parents=True, exist_ok=True)
    public.download_file(catalog.manifest_key(release, task_id), folder / catalog.MANIFEST)
    manifest: Manifest = catalog.parse_record(Manifest, (folder / catalog.MANIFEST).read_bytes(),
                                              public.uri_for(catalog.manifest_key(release, task_id)))
    kind = manifest.kind
    entries = {entry.path: entry for entry in manifest.files}
    wanted = [catalog.table_file(name) for name in TABLES[kind]] + [catalog.SAMPLE_SUBMISSION]
    missing = [path for path in wanted if path not in entries]
    if missing:
        raise BaselineError(f"{public.uri_for(prefix)}: the manifest lists no {', '.join(missing)}; is the release complete?")
    wanted += [path for path in entries if path.startswith(catalog.image_file(""))]
    for path in wanted:
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise BaselineError(f"{public.uri_for(prefix)}: manifest path {path!r} leaves the task folder")
    download_many(public, [(catalog.release_file_key(release, task_id, path), folder / path) for path in wanted])
    for path in wanted:
        if file_digest(folder / path, "sha256") != entries[path].sha256:
            raise BaselineError(f"{public.uri_for(catalog.release_file_key(release, task_id, path))}: SHA-256 differs "
                               "from the manifest's")
    features = pq.read_table(folder / catalog.table_file("train" if kind == "classification" else "records"))
    return ReleasedTask(release, task_id, kind, manifest.metric, column_modalities(manifest.columns, features), folder,
                        manifest.release)


def _declared(columns: Mapping[str, ColumnInfo]) -> dict[str, Modality]:
    """Column → modality as the manifest's `columns` declare them (releases before it had none: {})."""
    values = {m.value for m in Modality}
    return {name: Modality(info.modality) for name, info in columns.items() if info.modality in values}


def _infer(column: pa.ChunkedArray) -> Modality:
    """A modality for a column nothing declares: numbers are numeric, image paths images, few strings categorical."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        return Modality.numeric
    if pa.types.is_dictionary(column.type):
        return Modality.categorical
    values = pc.drop_null(pc.cast(column, pa.string()))
    if len(values) and pc.all(pc.starts_with(values, catalog.image_file(""))).as_py():
        return Modality.image
    distinct = len(pc.unique(values))
    return Modality.categorical if distinct <= max(20, len(values) // 20) else Modality.text


def column_modalities(columns: Mapping[str, ColumnInfo], table: pa.Table) -> dict[str, Modality]:
    """Each feature column of `table` (train or records) → its modality as the manifest's `columns` declare it
    (inferred when undeclared)."""
    declared = _declared(columns)
    return {name: declared.get(name) or _infer(table[name]) for name in table.column_names if name not in NOT_FEATURES}


# --- training -----------------------------------------------------------------


def _holdout(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of train into fit and held-out rows, stratified when every class can be."""
    fraction = VALIDATION_FRACTION
    try:
        splitter: Any = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(splitter.split(np.zeros(len(y)), y))
    except ValueError:  # a class too small to stratify
        splitter = ShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(splitter.split(np.zeros(len(y))))


class _Features(NamedTuple):
    """A task's model inputs: train's features and labels, and test's features."""

    X: Any
    y: np.ndarray
    X_test: Any


def _fit_predict(make: Callable[[], Any], features: _Features, metric: str, seed: int,
                 to_labels: Callable[[np.ndarray], Any]) -> tuple[np.ndarray, float]:
    """Validation score on a held-out slice of train, then a fit on all of train and the test predictions."""
    X, y, X_test = features
    fit_rows, held_out = _holdout(y, seed)
    take = (lambda rows: X.iloc[rows]) if isinstance(X, pd.DataFrame) else (lambda rows: X[rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        validation = make().fit(take(fit_rows), y[fit_rows]).predict(take(held_out))
        valid_score = score(metric, to_labels(y[held_out]), to_labels(validation))
        return make().fit(X, y).predict(X_test), round(float(valid_score), 6)


def _describe(modalities: dict[str, Modality]) -> str:
    counts = {m.value: sum(mod is m for mod in modalities.values()) for m in Modality}
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def train_classification(task_: ReleasedTask, seed: int = SEED) -> tuple[pa.Array, pa.Array, str, float, int]:
    """(test ids, predicted labels, model description, validation score, train rows) for a classification task."""
    train, test = (pq.read_table(task_.folder / catalog.table_file(name)) for name in ("train", "test"))
    modalities = {c: m for c, m in task_.modalities.items()
                  if m is not Modality.text or has_text(train[c])}  # an all-empty text column has no vocabulary
    X, X_test = feature_frame(train, modalities), feature_frame(test, modalities)
    y = as_strings(train["label"]).to_numpy()
    predicted, valid = _fit_predict(lambda: classification_model(modalities, task_.folder), _Features(X, y, X_test),
                                    task_.metric, seed, lambda v: pa.array(v.tolist(), pa.string()))
    model = f"LogisticRegression on {_describe(modalities)} column(s)"
    return test["id"].combine_chunks(), pa.array(predicted.tolist(), pa.string()), model, valid, train.num_rows


def train_matching(task_: ReleasedTask, seed: int = SEED) -> tuple[pa.Array, pa.Array, str, float, int]:
    """(test pair ids, predicted 0/1 labels, model description, validation score, train rows) for a matching task."""
    folder = task_.folder
    records, train, test = (pq.read_table(folder / catalog.table_file(name)) for name in ("records", "train", "test"))
    X, names = pair_features(records, positions_of(train["left_id"], records["id"], "train"),
                             positions_of(train["right_id"], records["id"], "train"), task_.modalities, folder)
    X_test, _ = pair_features(records, positions_of(test["left_id"], records["id"], "test"),
                              positions_of(test["right_id"], records["id"], "test"), task_.modalities, folder)
    y = as_numbers(train["label"]).astype(np.int64)
    predicted, valid = _fit_predict(lambda: matching_model(seed), _Features(X, y, X_test), task_.metric, seed, lambda v: v)
    model = f"HistGradientBoostingClassifier on {len(names)} pair similarities ({_describe(task_.modalities)} column(s))"
    labels = pc.cast(pa.array(predicted.astype(np.int64)), pa.string())
    return test["id"].combine_chunks(), labels, model, valid, train.num_rows


def predictions_csv(sample: bytes, ids: pa.Array, labels: pa.Array) -> bytes:
    """The predictions in exactly the format of `sample_submission.csv` (its header, writer and id order)."""
    options = pa_csv.ConvertOptions(column_types={"id": pa.string(), "label": pa.string()})
    sample_ids = pa_csv.read_csv(pa.BufferReader(sample), convert_options=options)["id"].combine_chunks()
    position = pc.index_in(sample_ids, value_set=ids)
    if position.null_count or len(sample_ids) != len(ids):
        raise BaselineError("the test ids and the sample submission's ids differ; is the release complete?")
    table = pa.table({"id": sample_ids, "label": labels.take(position)})
    out = pa.BufferOutputStream()
    pa_csv.write_csv(table, out)
    data = out.getvalue().to_pybytes()
    if data.split(b"\n", 1)[0] != sample.split(b"\n", 1)[0]:
        raise BaselineError(f"the predictions' header differs from {catalog.SAMPLE_SUBMISSION}'s")
    return data


def train_baseline(released: ReleasedTask, seed: int = SEED) -> Baseline:
    """Train the task's baseline on its downloaded files; predictions as sample-submission CSV bytes."""
    start = time.perf_counter()
    train = train_classification if released.kind == "classification" else train_matching
    ids, labels, model, valid, rows = train(released, seed)
    csv = predictions_csv((released.folder / catalog.SAMPLE_SUBMISSION).read_bytes(), ids, labels)
    return Baseline(released.task_id, released.release, released.kind, released.metric, model, valid, rows,
                    len(ids), round(time.perf_counter() - start, 3), csv)


# --- submission ---------------------------------------------------------------


def submission_key(task_id: str, release: str) -> str:
    """Where the baseline of `task_id` for `release` is uploaded in `submissions`."""
    return catalog.submission_key(BASELINE_TEAM, task_id, f"baseline-{release}.csv")


def submit_baseline(submissions: Storage, task_id: str, release: str, csv: bytes) -> tuple[str, bool]:
    """Upload the predictions as team `baseline`; (key, uploaded). Not uploaded again when the same bytes
    are already there, so a re-run is not a new submission."""
    key = submission_key(task_id, release)
    head = submissions.head(key)
    if head is not None and head.size == len(csv) and submissions.read_bytes(key) == csv:
        return key, False
    submissions.write_bytes(key, csv)
    return key, True


def run_baseline(run: RunContext, task_id: str, release: str, seed: int = SEED) -> BaselineSummary:
    """Download, train and submit one task's baseline; opens `public` and `submissions` only, never `private`."""
    public, submissions = run.public, run.submissions
    with tempfile.TemporaryDirectory(prefix="challenge-baseline-") as tmp:
        started = time.perf_counter()
        released = download_task(public, release, task_id, Path(tmp) / task_id)
        downloaded = time.perf_counter() - started
        result = train_baseline(released, seed)
    # named after the release the task's files were built in: a task carried over unchanged keeps its baseline
    key, uploaded = submit_baseline(submissions, task_id, released.built_in or release, result.csv)
    return {"task_id": task_id, "kind": result.kind, "release": release, "model": result.model,
            "metric": result.metric, "validation_score": result.validation_score, "train_rows": result.train_rows,
            "test_rows": result.test_rows, "download_seconds": round(downloaded, 3), "train_seconds": result.seconds,
            "submission": submissions.uri_for(key), "key": key, "uploaded": uploaded}


# --- Prefect task ---------------------------------------------------------------


@task(name="baseline", task_run_name="baseline-{task_id}", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=5, retry_condition_fn=transient)
def train_and_submit_baseline(run: RunContext, task_id: str, release: str) -> BaselineSummary:
    """Prefect wrapper: one task run per challenge task (download, train, submit)."""
    summary = run_baseline(run, task_id, release)
    get_run_logger().info("%s: %s, validation %s %.4f on %d train rows; %s %s", task_id, summary["model"],
                          summary["metric"], summary["validation_score"], summary["train_rows"],
                          "uploaded" if summary["uploaded"] else "unchanged", summary["key"])
    return summary
