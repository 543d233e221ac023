"""Bootstrap intervals, rank intervals and ties (issue 14): the statistics, without storage or Prefect."""

from __future__ import annotations

import numpy as np
import pytest

from challenge.core.metrics import METRICS, score
from challenge.tasks.boards.bootstrap import bootstrap_scores, metric_from_counts, summarize, task_seed


def counts(truth: np.ndarray, pred: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    true = np.bincount(truth, minlength=classes)
    tp = np.bincount(truth[truth == pred], minlength=classes)
    return true, tp, np.bincount(pred, minlength=classes)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_the_count_formulas_equal_the_registry(metric: str) -> None:
    rng = np.random.default_rng(3)
    classes = 2 if METRICS[metric].kind == "matching" else 4
    for _ in range(20):
        truth = rng.integers(0, classes, 50)
        pred = np.where(rng.random(50) < 0.6, truth, rng.integers(0, classes, 50))
        if classes == 4 and rng.random() < 0.5:
            pred[pred == 3] = 2  # a class only in the truth
        expected = score(metric, truth, pred)
        assert metric_from_counts(metric, *counts(truth, pred, classes)) == pytest.approx(expected, abs=1e-12)


def test_a_perfect_submission_has_interval_one_and_no_tie_with_a_worse_team() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 2000)
    worse = np.where(rng.random(2000) < 0.9, truth, (truth + 1) % 3)
    samples = bootstrap_scores(truth, np.stack([truth, worse]), 3, "macro_f1", 500, 1)
    perfect, second = summarize(samples, [True, True])
    assert perfect.ci95 == (1.0, 1.0) and perfect.rank_ci95 == (1, 1) and not perfect.tied_with_above
    assert second.rank_ci95 == (2, 2) and not second.tied_with_above and second.ci95[1] < 1.0


def test_identical_predictions_are_tied_with_the_same_interval() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 800)
    guess = np.where(rng.random(800) < 0.7, truth, 1 - truth)
    samples = bootstrap_scores(truth, np.stack([guess, guess]), 2, "f1", 400, 2)
    first, second = summarize(samples, [True, True])
    assert second.tied_with_above and first.ci95 == second.ci95
    assert first.rank_ci95 == second.rank_ci95 == (1, 1)  # equal scores share the better rank


def test_a_random_submission_has_the_width_theory_predicts_for_accuracy() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    truth = rng.integers(0, 4, n)
    pred = rng.integers(0, 4, n)
    p = float(np.mean(truth == pred))
    (interval,) = summarize(bootstrap_scores(truth, pred[None], 4, "accuracy", 2000, 5), [True])
    low, high = interval.ci95
    assert low < p < high
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / n), rel=0.1)


def test_the_same_seed_gives_the_same_intervals_to_the_last_digit() -> None:
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 1000)
    preds = np.stack([np.where(rng.random(1000) < q, truth, rng.integers(0, 3, 1000)) for q in (0.9, 0.8, 0.5)])
    seed = task_seed("penguins")
    first = summarize(bootstrap_scores(truth, preds, 3, "accuracy", 300, seed), [True, False, True])
    again = summarize(bootstrap_scores(truth, preds, 3, "accuracy", 300, seed), [True, False, True])
    assert first == again and first[1].rank_ci95 is None  # an unranked entry (the baseline) has no rank interval
    assert first != summarize(bootstrap_scores(truth, preds, 3, "accuracy", 300, task_seed("digits")), [True, False, True])


def test_bounded_memory_chunks_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing the resamples and building the indicators a few rows at a time gives the same scores."""
    from challenge.tasks.boards import bootstrap as intervals

    rng = np.random.default_rng(6)
    truth = rng.integers(0, 5, 3000)
    preds = np.stack([np.where(rng.random(3000) < q, truth, rng.integers(0, 5, 3000)) for q in (0.9, 0.6)])
    whole = bootstrap_scores(truth, preds, 5, "weighted_f1", 64, 9)
    monkeypatch.setattr(intervals, "CHUNK_BYTES", 4 * 3000 * 5)  # five resamples at a time
    monkeypatch.setattr(intervals, "INDICATOR_BYTES", 4 * 25 * 100)  # a hundred rows at a time
    assert np.array_equal(bootstrap_scores(truth, preds, 5, "weighted_f1", 64, 9), whole)
