"""Where a score is computed: the metric registry (name → vectorized function).

Each metric takes two aligned label arrays (truth, prediction; strings for
classification, 0/1 for matching) and returns a float, higher is better. The
implementations work on one confusion matrix built with numpy and equal
scikit-learn's (tests prove it, edge cases included: one class, classes
absent from either side, all wrong). Undefined ratios count as 0, as
scikit-learn's default `zero_division` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Labels = pa.Array | pa.ChunkedArray | np.ndarray


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # classification | matching
    fn: Callable[[Labels, Labels], float]
    higher_is_better: bool = True


def _dictionary(values: Labels) -> pa.DictionaryArray:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not isinstance(array, pa.Array):
        array = pa.array(array)
    return array if isinstance(array, pa.DictionaryArray) else pc.dictionary_encode(array)


def _codes(y_true: Labels, y_pred: Labels) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode both arrays against one dictionary (the union of their labels).

    Only the (small) dictionaries are compared; rows become integer codes.
    """
    true, pred = _dictionary(y_true), _dictionary(y_pred)
    if len(true) != len(pred):
        raise ValueError(f"truth has {len(true)} labels, prediction {len(pred)}")
    pred_values = pred.dictionary if pred.dictionary.type == true.dictionary.type else pc.cast(pred.dictionary, true.dictionary.type)
    union = pc.unique(pa.concat_arrays([true.dictionary, pred_values]))
    true_map = pc.index_in(true.dictionary, value_set=union).to_numpy(zero_copy_only=False).astype(np.int64)
    pred_map = pc.index_in(pred_values, value_set=union).to_numpy(zero_copy_only=False).astype(np.int64)
    true_codes = true_map[true.indices.to_numpy(zero_copy_only=False)]
    pred_codes = pred_map[pred.indices.to_numpy(zero_copy_only=False)]
    return true_codes, pred_codes, len(union)


def confusion_matrix(y_true: Labels, y_pred: Labels) -> np.ndarray:
    """Counts[i, j]: rows of true class i predicted as j, over the union of labels."""
    true, pred, n = _codes(y_true, y_pred)
    return np.bincount(true * n + pred, minlength=n * n).reshape(n, n)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(np.shape(numerator), dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _per_class_f1(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm)
    return _ratio(2 * tp, cm.sum(axis=0) + cm.sum(axis=1))


def accuracy(y_true: Labels, y_pred: Labels) -> float:
    cm = confusion_matrix(y_true, y_pred)
    return float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0


def macro_f1(y_true: Labels, y_pred: Labels) -> float:
    """Unweighted mean of per-class F1 over every label seen in truth or prediction."""
    f1 = _per_class_f1(confusion_matrix(y_true, y_pred))
    return float(f1.mean()) if f1.size else 0.0


def weighted_f1(y_true: Labels, y_pred: Labels) -> float:
    """Per-class F1 weighted by each class's support in the truth."""
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    return float((_per_class_f1(cm) * support).sum() / support.sum()) if support.sum() else 0.0


def balanced_accuracy(y_true: Labels, y_pred: Labels) -> float:
    """Mean recall over the classes present in the truth."""
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.0


def _binary_counts(y_true: Labels, y_pred: Labels) -> tuple[int, int, int]:
    true = np.asarray(y_true.to_numpy(zero_copy_only=False) if hasattr(y_true, "to_numpy") else y_true).astype(np.int64)
    pred = np.asarray(y_pred.to_numpy(zero_copy_only=False) if hasattr(y_pred, "to_numpy") else y_pred).astype(np.int64)
    tp = int(np.count_nonzero((true == 1) & (pred == 1)))
    return tp, int(np.count_nonzero((true != 1) & (pred == 1))), int(np.count_nonzero((true == 1) & (pred != 1)))


def precision(y_true: Labels, y_pred: Labels) -> float:
    """Of the pairs predicted to match (label 1), the share that do."""
    tp, fp, _ = _binary_counts(y_true, y_pred)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(y_true: Labels, y_pred: Labels) -> float:
    """Of the pairs that match, the share predicted to."""
    tp, _, fn = _binary_counts(y_true, y_pred)
    return tp / (tp + fn) if tp + fn else 0.0


def f1(y_true: Labels, y_pred: Labels) -> float:
    """Harmonic mean of precision and recall of the matching class (label 1)."""
    tp, fp, fn = _binary_counts(y_true, y_pred)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


METRICS: dict[str, Metric] = {
    m.name: m for m in (
        Metric("accuracy", "classification", accuracy),
        Metric("macro_f1", "classification", macro_f1),
        Metric("weighted_f1", "classification", weighted_f1),
        Metric("balanced_accuracy", "classification", balanced_accuracy),
        Metric("f1", "matching", f1),
        Metric("precision", "matching", precision),
        Metric("recall", "matching", recall),
    )
}


def score(metric: str, y_true: Labels, y_pred: Labels) -> float:
    """The named metric of the registry."""
    return METRICS[metric].fn(y_true, y_pred)


_FROM_CONFUSION: dict[str, Callable[[np.ndarray], float]] = {
    "accuracy": lambda cm: float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0,
    "macro_f1": lambda cm: float(_per_class_f1(cm).mean()) if cm.size else 0.0,
    "weighted_f1": lambda cm: float((_per_class_f1(cm) * cm.sum(axis=1)).sum() / cm.sum()) if cm.sum() else 0.0,
    "balanced_accuracy": lambda cm: float((np.diag(cm)[cm.sum(axis=1) > 0] / cm.sum(axis=1)[cm.sum(axis=1) > 0]).mean())
    if cm.sum() else 0.0,
}


def score_all(kind: str, y_true: Labels, y_pred: Labels) -> dict[str, float]:
    """Every metric of `kind` from one pass: one confusion matrix (or one set of binary counts)."""
    if kind == "classification":
        cm = confusion_matrix(y_true, y_pred)
        return {name: fn(cm) for name, fn in _FROM_CONFUSION.items()}
    tp, fp, fn = _binary_counts(y_true, y_pred)
    return {"f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0}
