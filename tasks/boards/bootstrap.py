"""How sure a board is (issue 14): 95% bootstrap intervals of each entry's score, rank intervals, and
which neighbours are statistically tied. Pure numpy; no storage, no Prefect.

A paired, seeded percentile bootstrap over the test rows (pairs, for a matching task) of the part a
board ranks by: every resample draws n rows with replacement, and every team of the task is scored on
the same resamples. Every metric of the registry is a formula over per-class true positives, true
counts and predicted counts (challenge/core/metrics.py), so a resample's counts for all teams come from one
matrix product, resample weights (B × n) times 0/1 indicators (n × columns): never a Python loop over
rows or resamples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 20261126  # with the task id, the seed of a task's resamples (stated on the page and in the JSON)
CHUNK_BYTES = 128 * 1024 * 1024  # resample weights held at once
INDICATOR_BYTES = 128 * 1024 * 1024  # rows of the indicator matrix held at once
METHOD = ("paired percentile bootstrap over the test rows (pairs for matching tasks) of the part the board "
          "ranks by; every team of a task scored on the same resamples")


def task_seed(task_id: str, seed: int = SEED) -> int:
    """The seed of one task's resamples: the same task and seed give the same intervals, to the last digit."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:8], "little")


def _indicators(truth: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """n × (K + T·2K) float32: truth one-hot, then per team true positives and predictions per class."""
    n, teams = len(truth), len(predictions)
    out = np.zeros((n, classes * (1 + 2 * teams)), dtype=np.float32)
    rows = np.arange(n)
    out[rows, truth] = 1
    for t, pred in enumerate(predictions):
        base = classes * (1 + 2 * t)
        correct = pred == truth
        out[rows[correct], base + truth[correct]] = 1
        out[rows, base + classes + pred] = 1
    return out


def resampled_counts(truth: np.ndarray, predictions: np.ndarray, classes: int, resamples: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample: true counts (B × K), and per team true positives and predicted counts (T × B × K).

    Memory stays bounded: resample weights are drawn CHUNK_BYTES at a time, and the indicator matrix is
    built INDICATOR_BYTES of rows at a time (rebuilt for each chunk of resamples: cheaper than holding it)."""
    n = len(truth)
    columns = classes * (1 + 2 * len(predictions))
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, CHUNK_BYTES // max(4 * n, 1)))
    rows = max(1, INDICATOR_BYTES // (4 * columns))
    sums = np.zeros((resamples, columns), dtype=np.float64)
    for start in range(0, resamples, chunk):
        c = min(chunk, resamples - start)
        weights = np.empty((c, n), dtype=np.float32)
        for b in range(c):  # one resample at a time: no (c × n) integer temporaries
            weights[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        for first in range(0, n, rows):
            part = slice(first, min(first + rows, n))
            # exact: integer counts below 2**24 per product, summed in float64
            sums[start:start + c] += weights[:, part] @ _indicators(truth[part], predictions[:, part], classes)
    sums = np.rint(sums)
    true = sums[:, :classes]
    per_team = sums[:, classes:].reshape(resamples, len(predictions), 2, classes).transpose(1, 2, 0, 3)
    return true, per_team[:, 0], per_team[:, 1]


def _safe(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def metric_from_counts(metric: str, true: np.ndarray, tp: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The registry's formulas over per-class counts (last axis: class); a class absent from both truth and
    prediction is left out, as metrics.py does over the labels seen. For a matching task the classes are
    0 and 1 and the formulas use class 1."""
    if metric in ("f1", "precision", "recall"):
        tp1, true1, pred1 = tp[..., 1], true[..., 1], pred[..., 1]
        return {"f1": _safe(2 * tp1, true1 + pred1), "precision": _safe(tp1, pred1), "recall": _safe(tp1, true1)}[metric]
    total = true.sum(axis=-1)
    if metric == "accuracy":
        return _safe(tp.sum(axis=-1), total)
    if metric == "balanced_accuracy":
        present = true > 0
        return _safe((_safe(tp, true) * present).sum(axis=-1), present.sum(axis=-1))
    f1 = _safe(2 * tp, true + pred)
    if metric == "macro_f1":
        seen = (true + pred) > 0
        return _safe((f1 * seen).sum(axis=-1), seen.sum(axis=-1))
    if metric == "weighted_f1":
        return _safe((f1 * true).sum(axis=-1), total)
    raise ValueError(f"no bootstrap formula for metric {metric!r}")


def bootstrap_scores(truth: np.ndarray, predictions: np.ndarray, classes: int, metric: str,
                     resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """T × B: each team's score on each paired resample of the rows."""
    if len(predictions) == 0:
        return np.zeros((0, resamples))
    true, tp, pred = resampled_counts(truth, predictions, classes, resamples, seed)
    return metric_from_counts(metric, true[None], tp, pred)


@dataclass(frozen=True)
class Uncertainty:
    """One entry's interval, rank interval (None for an unranked entry) and tie with the ranked entry above."""

    ci95: tuple[float, float]
    rank_ci95: tuple[int, int] | None
    tied_with_above: bool


def summarize(samples: np.ndarray, ranked: list[bool], level: float = LEVEL) -> list[Uncertainty]:
    """For entries in board order (T × B resampled scores): percentile intervals of the score, of the rank
    among the ranked entries (1 = best; equal scores share the better rank), and whether a ranked entry's
    paired difference with the ranked entry above has an interval containing 0."""
    low, high = (1 - level) / 2, 1 - (1 - level) / 2
    cis = np.quantile(samples, [low, high], axis=1).T if len(samples) else np.zeros((0, 2))
    ranked_idx = [i for i, r in enumerate(ranked) if r]
    ranks = np.zeros(samples.shape, dtype=int)
    if ranked_idx:
        block = samples[ranked_idx]
        ranks[ranked_idx] = 1 + (block[None, :, :] > block[:, None, :]).sum(axis=1)
    out, above = [], None
    for i, is_ranked in enumerate(ranked):
        rank_ci, tied = None, False
        if is_ranked:
            lo, hi = np.quantile(ranks[i], [low, high], method="inverted_cdf")
            rank_ci = (int(lo), int(hi))
            if above is not None:
                d_lo, d_hi = np.quantile(samples[above] - samples[i], [low, high])
                tied = bool(d_lo <= 0 <= d_hi)
            above = i
        out.append(Uncertainty((round(float(cis[i][0]), 6), round(float(cis[i][1]), 6)), rank_ci, tied))
    return out
