"""Split rules on generated edge cases (no storage, no orchestrator)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from challenge.tasks.release.splitting import SplitError, split_classification, split_matching, stratified_mask


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.5])
def test_stratified_mask_is_within_one_row_per_class_and_exact_in_total(fraction: float) -> None:
    rng = np.random.default_rng(0)
    strata = np.repeat([f"c{i}" for i in range(13)], rng.integers(2, 40, 13))
    picked, small = stratified_mask(strata, fraction, np.random.default_rng(1))
    assert small == []
    forced = sum(1 for n in Counter(strata).values() if n * fraction < 1)  # one row minimum per class
    assert round(len(strata) * fraction) <= picked.sum() <= round(len(strata) * fraction) + forced
    for value, n in Counter(strata).items():
        k = int(picked[strata == value].sum())
        assert abs(k - n * fraction) <= 1 and 1 <= k <= n - 1


def test_singleton_classes_stay_in_train_and_are_named() -> None:
    ids = pa.array([f"id{i}" for i in range(21)])
    labels = pa.array(["a"] * 10 + ["b"] * 10 + ["lonely"])
    result = split_classification(ids, labels, 0.2, 0.5, seed=3)
    assert result.notes["classes_only_in_train"] == ["lonely"]
    assert not result.test[-1]
    assert result.public.sum() and not (result.public & ~result.test).any()


def test_split_ignores_row_order_and_depends_on_seed() -> None:
    ids = np.array([f"id{i:03d}" for i in range(200)])
    labels = np.array(["x", "y", "z", "w"] * 50)
    first = split_classification(pa.array(ids), pa.array(labels), 0.2, 0.3, seed=5)
    perm = np.random.default_rng(9).permutation(200)
    shuffled = split_classification(pa.array(ids[perm]), pa.array(labels[perm]), 0.2, 0.3, seed=5)
    assert set(ids[first.test]) == set(ids[perm][shuffled.test])
    assert set(ids[first.public]) == set(ids[perm][shuffled.public])
    other = split_classification(pa.array(ids), pa.array(labels), 0.2, 0.3, seed=6)
    assert set(ids[first.test]) != set(ids[other.test])


def test_matching_groups_never_straddle() -> None:
    rng = np.random.default_rng(2)
    records = [f"r{i}" for i in range(300)]
    group_of = {r: i // 3 for i, r in enumerate(records)}  # groups of three records
    left, right, label = [], [], []
    for g in range(100):
        a, b, c = records[3 * g:3 * g + 3]
        left += [a, b]
        right += [b, c]
        label += [1, 1]
    for _ in range(400):
        a, b = rng.choice(records, 2, replace=False)
        if group_of[a] != group_of[b]:
            left.append(a)
            right.append(b)
            label.append(0)
    result = split_matching(_pairs(left, right, label), pa.array(records), 0.2, 0.3, seed=1)
    sides: dict[int, set[bool]] = {}
    for i, (a, b) in enumerate(zip(left, right)):
        if result.dropped[i]:
            continue
        sides.setdefault(group_of[a], set()).add(bool(result.test[i]))
        sides.setdefault(group_of[b], set()).add(bool(result.test[i]))
    assert all(len(s) == 1 for s in sides.values())
    assert abs(result.notes["achieved_test_fraction"] - 0.2) < 0.05


def test_one_giant_group_makes_the_fraction_impossible() -> None:
    records = [f"r{i}" for i in range(10)]
    left, right = records[:-1], records[1:]
    with pytest.raises(SplitError, match="achieved"):
        split_matching(_pairs(left, right, [1] * 9), pa.array(records), 0.2, 0.3, seed=0)


def _pairs(left: list[str], right: list[str], label: list[int]) -> pa.Table:
    return pa.table({"left_id": left, "right_id": right, "label": pa.array(label, pa.int8())})
