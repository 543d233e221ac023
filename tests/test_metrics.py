"""Our vectorized metrics equal scikit-learn's, on random data and on edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from challenge.core.metrics import METRICS, confusion_matrix, score
from challenge.core.task_spec import CLASSIFICATION_METRICS, MATCHING_METRICS

SKLEARN = {
    "accuracy": skm.accuracy_score,
    "macro_f1": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
    "weighted_f1": lambda t, p: skm.f1_score(t, p, average="weighted", zero_division=0),
    "balanced_accuracy": skm.balanced_accuracy_score,
    "f1": lambda t, p: skm.f1_score(t, p, pos_label=1, zero_division=0),
    "precision": lambda t, p: skm.precision_score(t, p, pos_label=1, zero_division=0),
    "recall": lambda t, p: skm.recall_score(t, p, pos_label=1, zero_division=0),
}


def expected(name: str, truth: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on absent classes; the value is what we compare
        return float(SKLEARN[name](truth, pred))


def test_registry_covers_every_metric_a_task_may_declare() -> None:
    assert set(METRICS) == set(CLASSIFICATION_METRICS) | set(MATCHING_METRICS)
    assert all(m.higher_is_better for m in METRICS.values())


CLASSIFICATION_CASES = {
    "random": lambda rng: (rng.choice(list("abcdefg"), 5000), rng.choice(list("abcdefg"), 5000)),
    "skewed": lambda rng: (rng.choice(list("abc"), 3000, p=[0.9, 0.09, 0.01]), rng.choice(list("abc"), 3000)),
    "one class": lambda rng: (np.array(["a"] * 50), np.array(["a"] * 50)),
    "one class, some wrong": lambda rng: (np.array(["a"] * 50), np.array(["a"] * 40 + ["b"] * 10)),
    "class absent from prediction": lambda rng: (np.array(list("aabbcc")), np.array(list("aabbbb"))),
    "class absent from truth": lambda rng: (np.array(list("aabbaa")), np.array(list("aabbcc"))),
    "all wrong": lambda rng: (np.array(list("abcabc")), np.array(list("bcabca"))),
    "perfect": lambda rng: (np.array(list("abcabc")), np.array(list("abcabc"))),
    "single row": lambda rng: (np.array(["x"]), np.array(["y"])),
}


@pytest.mark.parametrize("case", CLASSIFICATION_CASES)
@pytest.mark.parametrize("name", CLASSIFICATION_METRICS)
def test_classification_metrics_equal_sklearn(name: str, case: str) -> None:
    truth, pred = CLASSIFICATION_CASES[case](np.random.default_rng(len(case)))
    ours = score(name, pa.array(truth), pa.array(pred))
    assert ours == pytest.approx(expected(name, truth, pred), abs=1e-12)


MATCHING_CASES = {
    "random": lambda rng: (rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)),
    "rare positives": lambda rng: ((rng.random(4000) < 0.02).astype(int), (rng.random(4000) < 0.05).astype(int)),
    "no predicted positives": lambda rng: (np.array([1, 0, 1, 0]), np.array([0, 0, 0, 0])),
    "no true positives": lambda rng: (np.array([0, 0, 0]), np.array([1, 0, 1])),
    "no positives at all": lambda rng: (np.array([0, 0, 0]), np.array([0, 0, 0])),
    "all wrong": lambda rng: (np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1])),
    "perfect": lambda rng: (np.array([1, 0, 1, 1]), np.array([1, 0, 1, 1])),
}


@pytest.mark.parametrize("case", MATCHING_CASES)
@pytest.mark.parametrize("name", MATCHING_METRICS)
def test_matching_metrics_equal_sklearn(name: str, case: str) -> None:
    truth, pred = MATCHING_CASES[case](np.random.default_rng(len(case)))
    ours = score(name, pa.array(truth, pa.int8()), pa.array(pred, pa.int8()))
    assert ours == pytest.approx(expected(name, truth, pred), abs=1e-12)


def test_confusion_matrix_matches_sklearn_over_the_label_union() -> None:
    truth, pred = np.array(list("abcab")), np.array(list("abdaa"))
    labels = sorted(set(truth) | set(pred))
    ours = confusion_matrix(pa.array(truth), pa.array(pred))
    order = [list(pa.array(np.concatenate([truth, pred])).dictionary_encode().dictionary.to_pylist()).index(x) for x in labels]
    assert (ours[np.ix_(order, order)] == skm.confusion_matrix(truth, pred, labels=labels)).all()


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="truth has 3 labels, prediction 2"):
        score("accuracy", pa.array(list("abc")), pa.array(list("ab")))


@pytest.mark.parametrize("kind,cases", [("classification", CLASSIFICATION_CASES), ("matching", MATCHING_CASES)])
def test_score_all_equals_each_metric(kind: str, cases: dict) -> None:
    from challenge.core.metrics import score_all

    for make in cases.values():
        truth, pred = make(np.random.default_rng(3))
        t, p = (pa.array(truth), pa.array(pred)) if kind == "classification" else (pa.array(truth, pa.int8()), pa.array(pred, pa.int8()))
        together = score_all(kind, t, p)
        assert set(together) == {n for n, m in METRICS.items() if m.kind == kind}
        for name, value in together.items():
            assert value == pytest.approx(expected(name, truth, pred), abs=1e-12)


def test_docstring_examples_hold() -> None:
    import doctest

    import challenge.core.metrics

    result = doctest.testmod(challenge.core.metrics)
    assert result.attempted >= 10 and result.failed == 0


def test_task_yaml_metric_names_come_from_the_registry() -> None:
    assert CLASSIFICATION_METRICS == tuple(n for n, m in METRICS.items() if m.kind == "classification")
    assert MATCHING_METRICS == tuple(n for n, m in METRICS.items() if m.kind == "matching")


def test_both_parts_matrices_from_one_pass_score_as_each_part_alone() -> None:
    """Scoring's one-pass public/private matrices give what scoring each part's rows alone gives, also
    when a class is missing from a part (a filtered dictionary array keeps every class)."""
    import pyarrow.compute as pc

    from challenge.core.metrics import confusion_matrices, score_all, scores_from_matrix

    rng = np.random.default_rng(0)
    for _ in range(100):
        n, k = int(rng.integers(5, 60)), int(rng.integers(2, 6))
        classes = [f"c{i}" for i in range(k)]
        truth = pa.array(rng.choice(classes, n)).dictionary_encode()
        pred = pa.array(rng.choice(classes[:int(rng.integers(1, k + 1))], n)).dictionary_encode()
        public = rng.random(n) < 0.3
        matrices = confusion_matrices(truth, pred, (~public).astype(np.int8), 2)
        for cm, mask in zip(matrices, (public, ~public)):
            alone = score_all("classification", pc.filter(truth, pa.array(mask)), pc.filter(pred, pa.array(mask)))
            assert scores_from_matrix("classification", cm) == pytest.approx(alone)
