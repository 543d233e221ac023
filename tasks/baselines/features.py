"""Baseline features: the columns of a released task as numbers a scikit-learn model can take
(pixels for images, similarities of the two records of a pair), and the two models they feed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from challenge.core.errors import BaselineError
from challenge.core.task_spec import Modality

IMAGE_SIDE = 8  # images become IMAGE_SIDE² grayscale pixels in [0, 1]
RATIO_CHARS = 200  # SequenceMatcher is quadratic: long texts are compared on their start

def as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as plain strings (dictionaries decoded, numbers formatted), nulls kept."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column if column.type == pa.string() else pc.cast(column, pa.string())


def _strings(column: pa.ChunkedArray) -> list[str | None]:
    return as_strings(column).to_pylist()


def has_text(column: pa.ChunkedArray) -> bool:
    return (pc.max(pc.utf8_length(as_strings(column))).as_py() or 0) > 0


def as_numbers(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy().astype(np.float64)  # nulls become NaN


def image_pixels(root: Path, paths: Sequence[str | None], side: int = IMAGE_SIDE) -> np.ndarray:
    """One row of side² grayscale pixels in [0, 1] per image path (relative to `root`); NaN for a missing image."""
    out = np.full((len(paths), side * side), np.nan)
    for i, path in enumerate(paths):
        if isinstance(path, str) and path:  # pandas may hold a missing path as NaN
            if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
                raise BaselineError(f"image path {path!r} leaves the task folder")
            with Image.open(root / path) as image:
                pixels = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
                out[i] = np.asarray(pixels, dtype=np.float64).ravel() / 255.0
    return out


class ImagePixels(TransformerMixin, BaseEstimator):
    """Image paths (a column) → small grayscale pixel features; a missing image is all zeros."""

    def __init__(self, root: str = ".", side: int = IMAGE_SIDE):
        self.root = root
        self.side = side

    def fit(self, X: Any, y: Any = None) -> ImagePixels:
        return self

    def transform(self, X: Any) -> np.ndarray:
        paths = np.asarray(X, dtype=object).ravel().tolist()
        return np.nan_to_num(image_pixels(Path(self.root), paths, self.side), nan=0.0)


def feature_frame(table: pa.Table, modalities: dict[str, Modality]) -> pd.DataFrame:
    """The feature columns as a DataFrame: numeric as float (NaN when missing), the others as strings
    ("" when missing), image paths as they are."""
    data: dict[str, Any] = {}
    for column, modality in modalities.items():
        if modality is Modality.numeric:
            data[column] = as_numbers(table[column])
        elif modality is Modality.image:
            data[column] = as_strings(table[column]).to_numpy()
        else:
            data[column] = pc.fill_null(as_strings(table[column]), "").to_numpy()
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))


def classification_model(modalities: dict[str, Modality], root: Path) -> Pipeline:
    """ColumnTransformer over the modalities → LogisticRegression (lbfgs: deterministic)."""
    of = {m: [c for c, mod in modalities.items() if mod is m] for m in Modality}
    parts: list[tuple[str, Any, Any]] = []
    for column in of[Modality.text]:
        parts.append((f"text-{column}", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                                        max_features=50_000), column))
    if of[Modality.categorical]:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), of[Modality.categorical]))
    if of[Modality.numeric]:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), of[Modality.numeric]))
    for column in of[Modality.image]:
        parts.append((f"image-{column}", make_pipeline(ImagePixels(str(root)), StandardScaler()), column))
    if not parts:
        raise BaselineError("no feature column to learn from")
    return Pipeline([("features", ColumnTransformer(parts)), ("model", LogisticRegression(C=1.0, max_iter=2000))])


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text))


def _text_similarities(values: list[str | None], left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token Jaccard and SequenceMatcher ratio of each pair's two values (NaN when either is missing)."""
    norm = [" ".join(v.lower().split()) or None if v else None for v in values]
    tokens = [_tokens(v) if v else frozenset() for v in norm]
    jaccard, ratio = np.full(len(left), np.nan), np.full(len(left), np.nan)
    for i, (a, b) in enumerate(zip(left.tolist(), right.tolist())):
        va, vb = norm[a], norm[b]
        if va is None or vb is None:
            continue
        union = len(tokens[a] | tokens[b])
        jaccard[i] = len(tokens[a] & tokens[b]) / union if union else float(va == vb)
        ratio[i] = SequenceMatcher(None, va[:RATIO_CHARS], vb[:RATIO_CHARS], autojunk=False).ratio()
    return jaccard, ratio


def pair_features(records: pa.Table, left: np.ndarray, right: np.ndarray, modalities: dict[str, Modality],
                  root: Path) -> tuple[np.ndarray, list[str]]:
    """Similarity features of pairs of records (`left`/`right`: row positions in `records`); NaN when a side is missing."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    for column, modality in modalities.items():
        if modality is Modality.text:
            jaccard, ratio = _text_similarities(_strings(records[column]), left, right)
            columns += [jaccard, ratio]
            names += [f"{column}:jaccard", f"{column}:ratio"]
        elif modality is Modality.categorical:
            codes = pc.dictionary_encode(as_strings(records[column])).combine_chunks().indices
            codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)
            a, b = codes[left], codes[right]
            columns.append(np.where((a < 0) | (b < 0), np.nan, (a == b).astype(np.float64)))
            names.append(f"{column}:equal")
        elif modality is Modality.numeric:
            x = as_numbers(records[column])
            a, b = x[left], x[right]
            diff = np.abs(a - b)
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = diff / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)
            columns += [diff, relative]
            names += [f"{column}:abs_diff", f"{column}:rel_diff"]
        else:
            pixels = image_pixels(root, _strings(records[column]))
            columns.append(np.abs(pixels[left] - pixels[right]).mean(axis=1))
            names.append(f"{column}:pixel_l1")
    if not columns:
        raise BaselineError("no feature column to compare records on")
    return np.column_stack(columns), names


def positions_of(ids: pa.ChunkedArray, record_ids: pa.ChunkedArray, table: str) -> np.ndarray:
    found = pc.index_in(ids, value_set=record_ids.combine_chunks())
    if found.null_count:
        raise BaselineError(f"{table}: {found.null_count} pair id(s) name no record of records.parquet")
    return found.to_numpy(zero_copy_only=False).astype(np.int64)


def matching_model(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=False, random_state=seed)


