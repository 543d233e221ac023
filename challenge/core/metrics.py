"""Where a score is computed: the metric registry, one formula per metric.

Every metric is a formula over counts: the confusion matrix of a classification
task (over the union of the labels seen in truth or prediction), or the
true-positive, false-positive and false-negative counts of the matching class
(label 1) of a matching task. The counts are built once per (truth, prediction)
with numpy, so `score_all` gives every metric of a kind from one pass, and the
public functions (`accuracy(y_true, y_pred)`, ...) are thin wrappers over the
same formula. Values equal scikit-learn's (tests/test_metrics.py), edge cases
included; undefined ratios count as 0, as scikit-learn's default
`zero_division` does. Higher is better for every metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Labels = pa.Array | pa.ChunkedArray | np.ndarray
Kind = Literal["classification", "matching"]


@dataclass(frozen=True)
class BinaryCounts:
    """Counts of the matching class (label 1): true positives, false positives, false negatives."""

    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    formula: Callable[[np.ndarray], float] | Callable[[BinaryCounts], float]  # over confusion matrix / binary counts
    what: str = ""  # what it computes, in a sentence for participants (the dataset card)
    higher_is_better: bool = True


# ---- counts ---------------------------------------------------------------------------------------------


def _dictionary(values: Labels) -> pa.DictionaryArray:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not isinstance(array, pa.Array):
        array = pa.array(array)
    return array if isinstance(array, pa.DictionaryArray) else pc.dictionary_encode(array)


def _check_lengths(y_true: Labels, y_pred: Labels) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"truth has {len(y_true)} labels, prediction {len(y_pred)}")


def _codes(y_true: Labels, y_pred: Labels) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode both arrays against one dictionary (the union of their labels).

    Only the (small) dictionaries are compared; rows become integer codes.
    """
    _check_lengths(y_true, y_pred)
    true, pred = _dictionary(y_true), _dictionary(y_pred)
    pred_values = pred.dictionary if pred.dictionary.type == true.dictionary.type else pc.cast(pred.dictionary, true.dictionary.type)
    union = pc.unique(pa.concat_arrays([true.dictionary, pred_values]))
    true_map = pc.index_in(true.dictionary, value_set=union).to_numpy(zero_copy_only=False).astype(np.int64)
    pred_map = pc.index_in(pred_values, value_set=union).to_numpy(zero_copy_only=False).astype(np.int64)
    true_codes = true_map[true.indices.to_numpy(zero_copy_only=False)]
    pred_codes = pred_map[pred.indices.to_numpy(zero_copy_only=False)]
    return true_codes, pred_codes, len(union)


def confusion_matrix(y_true: Labels, y_pred: Labels) -> np.ndarray:
    """Counts[i, j]: rows of true class i predicted as j, over the union of labels.

    >>> confusion_matrix(np.array(["a", "b", "b"]), np.array(["a", "a", "b"])).tolist()
    [[1, 0], [1, 1]]
    """
    true, pred, n = _codes(y_true, y_pred)
    return np.bincount(true * n + pred, minlength=n * n).reshape(n, n)


def confusion_matrices(y_true: Labels, y_pred: Labels, groups: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """One confusion matrix per group of rows (groups[i] in 0..n_groups-1), from one pass over the rows,
    each over the same labels as confusion_matrix of those rows would use: the union of both arrays'
    dictionaries (a dictionary-encoded array keeps its whole dictionary when rows are filtered)."""
    true, pred, n = _codes(y_true, y_pred)
    counts = np.bincount((groups.astype(np.int64) * n + true) * n + pred, minlength=n_groups * n * n)
    return list(counts.reshape(n_groups, n, n))


def scores_from_matrix(kind: Kind, cm: np.ndarray) -> dict[str, float]:
    """Every metric of a classification `kind` from its confusion matrix."""
    return {name: m.formula(cm) for name, m in METRICS.items() if m.kind == kind}


def _as_int(values: Labels) -> np.ndarray:
    array = values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") else values
    return np.asarray(array).astype(np.int64)


def binary_counts(y_true: Labels, y_pred: Labels) -> BinaryCounts:
    """True positives, false positives and false negatives of label 1 (a matching task's labels are 0/1).

    >>> binary_counts(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    BinaryCounts(tp=1, fp=1, fn=1)
    """
    _check_lengths(y_true, y_pred)
    true, pred = _as_int(y_true), _as_int(y_pred)
    return BinaryCounts(tp=int(np.count_nonzero((true == 1) & (pred == 1))),
                        fp=int(np.count_nonzero((true != 1) & (pred == 1))),
                        fn=int(np.count_nonzero((true == 1) & (pred != 1))))


# ---- formulas (one per metric) --------------------------------------------------------------------------


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(np.shape(numerator), dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _per_class_f1(cm: np.ndarray) -> np.ndarray:
    return _ratio(2 * np.diag(cm), cm.sum(axis=0) + cm.sum(axis=1))


def _accuracy(cm: np.ndarray) -> float:
    return float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0


def _macro_f1(cm: np.ndarray) -> float:
    f1 = _per_class_f1(cm)
    return float(f1.mean()) if f1.size else 0.0


def _weighted_f1(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    return float((_per_class_f1(cm) * support).sum() / support.sum()) if support.sum() else 0.0


def _balanced_accuracy(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.0


def _f1(c: BinaryCounts) -> float:
    return 2 * c.tp / (2 * c.tp + c.fp + c.fn) if c.tp else 0.0


def _precision(c: BinaryCounts) -> float:
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0


def _recall(c: BinaryCounts) -> float:
    return c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0


METRICS: dict[str, Metric] = {
    m.name: m for m in (
        Metric("accuracy", "classification", _accuracy, "the share of test rows whose predicted label is right"),
        Metric("macro_f1", "classification", _macro_f1,
               "the F1 score (harmonic mean of precision and recall) of each class, averaged over the classes with "
               "equal weight, so a rare class counts as much as a common one"),
        Metric("weighted_f1", "classification", _weighted_f1,
               "the F1 score of each class, averaged with each class weighted by its number of test rows"),
        Metric("balanced_accuracy", "classification", _balanced_accuracy,
               "the recall of each class (the share of its rows predicted right), averaged over the classes"),
        Metric("f1", "matching", _f1,
               "the F1 score of the matching pairs (label 1): the harmonic mean of precision (pairs predicted as "
               "matches that are matches) and recall (matches predicted as such)"),
        Metric("precision", "matching", _precision, "the share of pairs predicted as matches (label 1) that are matches"),
        Metric("recall", "matching", _recall, "the share of matching pairs (label 1) that are predicted as matches"),
    )
}


def metric_names(kind: Kind) -> tuple[str, ...]:
    """The metrics a task of `kind` may declare in task.yaml, in registry order."""
    return tuple(name for name, m in METRICS.items() if m.kind == kind)


def _counts(kind: Kind, y_true: Labels, y_pred: Labels) -> np.ndarray | BinaryCounts:
    return confusion_matrix(y_true, y_pred) if kind == "classification" else binary_counts(y_true, y_pred)


def score(metric: str, y_true: Labels, y_pred: Labels) -> float:
    """The named metric of the registry.

    >>> score("accuracy", np.array(["a", "b", "b", "c"]), np.array(["a", "b", "c", "c"]))
    0.75
    """
    m = METRICS[metric]
    return m.formula(_counts(m.kind, y_true, y_pred))


def score_all(kind: Kind, y_true: Labels, y_pred: Labels) -> dict[str, float]:
    """Every metric of `kind` from one pass: one confusion matrix (or one set of binary counts).

    >>> score_all("matching", np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    {'f1': 0.5, 'precision': 0.5, 'recall': 0.5}
    """
    counts = _counts(kind, y_true, y_pred)
    return {name: m.formula(counts) for name, m in METRICS.items() if m.kind == kind}


# ---- the public functions: thin over the same formulas ---------------------------------------------------


def accuracy(y_true: Labels, y_pred: Labels) -> float:
    """Share of labels predicted exactly.

    >>> accuracy(np.array(["a", "b", "b"]), np.array(["a", "a", "b"]))
    0.6666666666666666
    """
    return score("accuracy", y_true, y_pred)


def macro_f1(y_true: Labels, y_pred: Labels) -> float:
    """Unweighted mean of per-class F1 over every label seen in truth or prediction.

    >>> macro_f1(np.array(["a", "b", "b"]), np.array(["a", "a", "b"]))
    0.6666666666666666
    """
    return score("macro_f1", y_true, y_pred)


def weighted_f1(y_true: Labels, y_pred: Labels) -> float:
    """Per-class F1 weighted by each class's support in the truth.

    >>> round(weighted_f1(np.array(["a", "b", "b"]), np.array(["a", "a", "b"])), 4)
    0.6667
    """
    return score("weighted_f1", y_true, y_pred)


def balanced_accuracy(y_true: Labels, y_pred: Labels) -> float:
    """Mean recall over the classes present in the truth.

    >>> balanced_accuracy(np.array(["a", "b", "b"]), np.array(["a", "a", "b"]))
    0.75
    """
    return score("balanced_accuracy", y_true, y_pred)


def f1(y_true: Labels, y_pred: Labels) -> float:
    """Harmonic mean of precision and recall of the matching class (label 1).

    >>> f1(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.6666666666666666
    """
    return score("f1", y_true, y_pred)


def precision(y_true: Labels, y_pred: Labels) -> float:
    """Of the pairs predicted to match (label 1), the share that do.

    >>> precision(np.array([1, 0, 0]), np.array([1, 1, 0]))
    0.5
    """
    return score("precision", y_true, y_pred)


def recall(y_true: Labels, y_pred: Labels) -> float:
    """Of the pairs that match, the share predicted to.

    >>> recall(np.array([1, 1, 0]), np.array([1, 0, 0]))
    0.5
    """
    return score("recall", y_true, y_pred)
