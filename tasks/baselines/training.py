"""Baseline training: a released task's downloaded folder in, predictions in the sample submission's format
out, with no storage and no Prefect (tasks/baselines/models.py downloads, submits and wraps it; the example
algorithm `baseline` runs it under the algorithm contract, docs/contract.md).

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

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from challenge.core import catalog
from challenge.core.catalog import ColumnInfo, Manifest
from challenge.core.errors import BaselineError
from challenge.core.metrics import score
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

SEED = 0
VALIDATION_FRACTION = 0.2
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


def released_task(folder: Path) -> ReleasedTask:
    """The task in `folder` as `challenge download` (or download_task below) leaves it: manifest.json beside the
    tables."""
    manifest: Manifest = catalog.parse_record(Manifest, (folder / catalog.MANIFEST).read_bytes(), str(folder / catalog.MANIFEST))
    features = pq.read_table(folder / catalog.table_file("train" if manifest.kind == "classification" else "records"))
    return ReleasedTask(manifest.release, manifest.task_id, manifest.kind, manifest.metric,
                        column_modalities(manifest.columns, features), folder, manifest.release)
