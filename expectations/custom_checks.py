"""Quality checks Great Expectations has no expectation for.

Each check takes the standardized tables of a drop and a CheckContext and
returns CheckResults; suites in this folder name them under `custom_checks`.
A drop may lack a column (the gate still checks what it can): NEEDS says what
each check reads, and a check whose columns are absent is skipped, saying why.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from challenge.core.task_spec import Modality, TaskSpec, snake_case
from challenge.expectations.checks import CheckResult, failed, passed


@dataclass
class CheckContext:
    spec: TaskSpec
    drop_dir: Path  # local copy of the drop

    @property
    def images_dir(self) -> Path | None:
        return self.drop_dir / self.spec.images if self.spec.images else None

    def features(self, *modalities: Modality) -> list[str]:
        return [snake_case(n) for n, c in self.spec.columns.items() if not modalities or c.modality in modalities]


Tables = dict[str, pa.Table]
CustomCheck = Callable[..., list[CheckResult]]


def rows_per_class(tables: Tables, ctx: CheckContext, table: str = "data", min_rows: int = 5) -> list[CheckResult]:
    """Every class needs at least `min_rows` rows to appear in both train and test."""
    counts = tables[table].group_by("label").aggregate([("label", "count")])
    small = counts.filter(pc.and_(pc.is_valid(counts["label"]), pc.less(counts["label_count"], min_rows)))
    if small.num_rows == 0:
        return [passed("rows_per_class", table, "label")]
    small = small.sort_by("label_count")
    examples = [{"label": lab, "rows": n} for lab, n in zip(small["label"].to_pylist(), small["label_count"].to_pylist())]
    return [failed(
        "rows_per_class", table, column="label", count=small.num_rows, examples=examples,
        hint=f"{small.num_rows} class(es) have fewer than {min_rows} rows; add rows, merge or drop these classes",
    )]


def numeric_values_finite(tables: Tables, ctx: CheckContext, table: str = "data") -> list[CheckResult]:
    """Numeric columns hold finite numbers: NaN (a float NaN; NaN written as text is read as missing), inf,
    -inf and values beyond ±1.8e308 (1e400 reads as inf) fail, unless task.yaml allows them for the column
    (or the task) with allow_nonfinite. Missing values (empty cells) are not checked here."""
    data = tables[table]
    results = []
    for original, column in ((n, snake_case(n)) for n in ctx.spec.columns_of(Modality.numeric)):
        if column not in data.column_names or not pa.types.is_floating(data[column].type) \
                or ctx.spec.allows_nonfinite(original):
            continue
        values = data[column]
        bad = pc.fill_null(pc.invert(pc.is_finite(values)), False)
        count = pc.sum(bad).as_py() or 0
        if not count:
            results.append(passed("numeric_values_finite", table, column))
            continue
        shown = data.select([c for c in ("id", column) if c in data.column_names]).filter(bad).slice(0, 5).to_pylist()
        examples = [{**({"id": r["id"]} if "id" in r else {}), column: str(r[column])} for r in shown]
        results.append(failed(
            "numeric_values_finite", table, column=column, count=count, examples=examples,
            hint=f"{count} value(s) are not finite numbers (NaN, inf, -inf, or beyond ±1.8e308 such as 1e400); give "
                 "real values, leave the cell empty where a value is missing, or set allow_nonfinite: true on the "
                 "column in task.yaml if they are meant",
        ))
    return results or [passed("numeric_values_finite", table)]


MAX_IMAGE_PIXELS = 40_000_000  # a product picture is a few megapixels; 400 MP would decode to gigabytes
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow refuses (DecompressionBombError) beyond twice this
LOOKUP_ACCURACY = 0.99  # a feature whose lookup table predicts the label this well gives the answer away
LOOKUP_COVERAGE = 0.5  # ... on at least this share of the rows (values seen in the other half)
SAMPLE_ROWS = 50_000  # rows of the first look at each column


def _codes(values: pa.ChunkedArray) -> np.ndarray:
    """Dictionary codes of a column (nulls: -1)."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    return np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def lookup_fit(values: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> tuple[float, float]:
    """Learn value → majority label on each half of the rows, predict the other half.

    Returns (accuracy on the rows whose value was seen in the other half, share of rows it applies to);
    values and labels are integer codes, -1 for null values.
    """
    n_labels = int(labels.max()) + 1 if len(labels) else 1
    correct = covered = 0
    for learn in (0, 1):
        train, test = (fold == learn) & (values >= 0), (fold != learn) & (values >= 0)
        pair = values[train] * n_labels + labels[train]
        order = np.argsort(pair, kind="stable")
        pair = pair[order]
        starts = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]])) if len(pair) else np.zeros(0, np.int64)
        counts = np.diff(np.append(starts, len(pair)))
        value, label = pair[starts] // n_labels, pair[starts] % n_labels
        best = np.lexsort((-counts, value))  # per value, its most frequent label first
        value, label = value[best], label[best]
        first = np.concatenate([[True], value[1:] != value[:-1]]) if len(value) else np.zeros(0, bool)
        table_values, table_labels = value[first], label[first]
        position = np.searchsorted(table_values, values[test])
        seen = position < len(table_values)
        seen[seen] = table_values[position[seen]] == values[test][seen]
        covered += int(seen.sum())
        correct += int((table_labels[position[seen]] == labels[test][seen]).sum())
    rows = int((values >= 0).sum())
    return (correct / covered if covered else 0.0), (covered / rows if rows else 0.0)


def label_leak(tables: Tables, ctx: CheckContext, table: str = "data") -> list[CheckResult]:
    """A feature that gives the label away: a lookup table learned on half of the rows predicts the label
    of at least 99% of the other half's rows it applies to (and applies to at least half of them), where
    the most frequent class alone would not. One-to-one maps are the extreme case."""
    data = tables[table]
    if data.num_rows == 0 or pc.count_distinct(data["label"]).as_py() < 2:
        return [passed("label_leak", table)]
    labels = _codes(data["label"])
    majority = np.bincount(labels[labels >= 0]).max() / max(int((labels >= 0).sum()), 1)
    rng = np.random.default_rng(0)
    fold = rng.permutation(data.num_rows) % 2
    sample = np.sort(rng.choice(data.num_rows, min(data.num_rows, SAMPLE_ROWS), replace=False))
    results = []
    for column in [c for c in ctx.features(Modality.text, Modality.categorical, Modality.numeric) if c in data.column_names]:
        # Each test below only rules the column out; the cheapest go first, and the whole column is coded
        # only for the few that pass them (codes only need to tell values apart, so the sample's own do).
        if len(sample) < data.num_rows:  # cheap first look: a column far from a lookup leak in a sample is one
            accuracy, coverage = lookup_fit(_codes(data[column].take(sample)), labels[sample], fold[sample])
            if coverage * len(sample) >= 1000 and accuracy < 0.9:
                continue
        distinct = pc.unique(data[column])
        if len(distinct) - distinct.null_count > 0.75 * data.num_rows:
            continue  # so many singletons that a lookup table applies to fewer than half of the rows
        values = _codes(data[column])
        accuracy, coverage = lookup_fit(values, labels, fold)
        if accuracy < LOOKUP_ACCURACY or coverage < LOOKUP_COVERAGE or majority >= LOOKUP_ACCURACY:
            continue
        column_values = data[column]
        if pa.types.is_dictionary(column_values.type):
            column_values = column_values.cast(column_values.type.value_type)
        pair = pa.table({"value": column_values, "label": data["label"]}).filter(pc.is_valid(column_values))
        per_value = pair.group_by("value").aggregate([("label", "count_distinct")])
        one_to_one = (pc.max(per_value["label_count_distinct"]).as_py() == 1
                      and per_value.num_rows == pc.count_distinct(data["label"]).as_py())
        examples = pair.group_by(["value", "label"]).aggregate([]).slice(0, 5).to_pylist()
        how = ("determines the label one-to-one (each value ↔ one class)" if one_to_one else
               f"predicts the label almost perfectly: a lookup table learned on half of the rows is right on "
               f"{accuracy:.1%} of the other half's rows it applies to ({coverage:.0%} of them)")
        results.append(failed(
            "label_leak", table, column=column, count=per_value.num_rows, examples=examples,
            hint=f"'{column}' {how}; remove it, or coarsen it so that it no longer gives the class away",
        ))
    return results or [passed("label_leak", table)]


DECODE_POOL_MIN = 20_000  # fewer images are checked in this process: a worker pool's start-up costs more
DECODE_CHUNK = 5_000  # at most this many images per task sent to a worker
# Workers start from a clean server process, not a fork of this one (whose threads may hold locks);
# that server imports this module once, and later pools reuse it.
_DECODE_CONTEXT = multiprocessing.get_context("forkserver")


def _image_problem(root: Path, relative: str) -> str | None:
    """Why the image at `relative` under `root` is refused (missing, a link, too large, does not decode), or None."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts:
        return "path leaves the images folder"
    path = os.path.join(root, *rel.parts)
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "file not found"
    if stat.S_ISLNK(mode):
        return "a symbolic link, not an image file"
    if not stat.S_ISREG(mode):
        return "file not found"
    try:
        with Image.open(path) as img:  # reads the header only
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                return f"image too large ({width}×{height} pixels; at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
            img.verify()
    except Image.DecompressionBombError:
        return f"image too large (at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"does not decode as an image ({type(exc).__name__})"
    return None


def _image_problems(root: Path, relatives: list[str]) -> dict[str, str]:
    """The refused images among `relatives` and why (one worker's chunk)."""
    problems = ((relative, _image_problem(root, relative)) for relative in relatives)
    return {relative: why for relative, why in problems if why}


def image_problems(root: Path, relatives: list[str]) -> dict[str, str]:
    """`_image_problems` over many images: in chunks, in a pool of one worker process per core."""
    workers = min(os.cpu_count() or 1, -(-len(relatives) // DECODE_CHUNK))
    daemon = multiprocessing.current_process().daemon  # e.g. a Dask worker: it may not start processes
    if len(relatives) < DECODE_POOL_MIN or workers < 2 or daemon:
        return _image_problems(root, relatives)
    size = min(DECODE_CHUNK, -(-len(relatives) // (4 * workers)))  # a few chunks per worker balance the load
    chunks = [relatives[start:start + size] for start in range(0, len(relatives), size)]
    _DECODE_CONTEXT.set_forkserver_preload([__name__])  # no effect once the server runs
    with ProcessPoolExecutor(max_workers=workers, mp_context=_DECODE_CONTEXT) as pool:
        return {k: v for part in pool.map(_image_problems, repeat(root), chunks) for k, v in part.items()}


def images_decode(tables: Tables, ctx: CheckContext, table: str = "data") -> list[CheckResult]:
    """Every image path exists under the drop's images folder and decodes."""
    root = ctx.images_dir
    results = []
    data = tables[table]
    for column in [c for c in ctx.features(Modality.image) if c in data.column_names]:  # (an absent one is skipped)
        paths = data[column]
        valid = pc.is_valid(paths)
        unique_paths = pc.unique(pc.filter(paths, valid)).to_pylist()
        bad = image_problems(root, unique_paths) if root else {p: "no images folder" for p in unique_paths}
        if not bad:
            results.append(passed("images_decode", table, column))
            continue
        mask = pc.is_in(paths, value_set=pa.array(sorted(bad), pa.string()))
        shown = [c for c in ("id", column) if c in data.column_names]
        rows = data.select(shown).filter(pc.fill_null(mask, False)).slice(0, 5).to_pylist()
        examples = [{**({"id": r["id"]} if "id" in r else {}), "path": r[column], "problem": bad[r[column]]} for r in rows]
        results.append(failed(
            "images_decode", table, column=column, count=len(bad), examples=examples,
            hint=f"{len(bad)} image(s) under '{ctx.spec.images}/' are missing or do not decode; add or replace them",
        ))
    return results


def pairs_reference_records(tables: Tables, ctx: CheckContext) -> list[CheckResult]:
    """Both ids of every pair exist in the records table."""
    pairs, ids = tables["pairs"], tables["records"]["id"]
    results = []
    for column in ("left_id", "right_id"):
        missing = pc.invert(pc.fill_null(pc.is_in(pairs[column], value_set=ids.combine_chunks()), True))
        n = pc.sum(missing).as_py() or 0
        if n:
            examples = pairs.filter(missing).slice(0, 5).to_pylist()
            results.append(failed(
                "pairs_reference_records", "pairs", column=column, count=n, examples=examples,
                hint=f"{n} pair(s) name a {column} that is not in the records table; add the record or remove the pair",
            ))
        else:
            results.append(passed("pairs_reference_records", "pairs", column))
    return results


def _unordered(pairs: pa.Table) -> pa.Table:
    left, right = pairs["left_id"], pairs["right_id"]
    first = pc.if_else(pc.less_equal(left, right), left, right)
    second = pc.if_else(pc.less_equal(left, right), right, left)
    return pa.table({"a": first, "b": second, "label": pairs["label"]})


def pairs_conflicting_labels(tables: Tables, ctx: CheckContext) -> list[CheckResult]:
    """The same pair (in either order) may not carry both labels."""
    per_pair = _unordered(tables["pairs"]).group_by(["a", "b"]).aggregate([("label", "count_distinct")])
    conflicts = per_pair.filter(pc.greater(per_pair["label_count_distinct"], 1))
    if conflicts.num_rows == 0:
        return [passed("pairs_conflicting_labels", "pairs", "label")]
    examples = [{"left_id": r["a"], "right_id": r["b"]} for r in conflicts.slice(0, 5).to_pylist()]
    return [failed(
        "pairs_conflicting_labels", "pairs", column="label", count=conflicts.num_rows, examples=examples,
        hint="these pairs are listed with label 0 and with label 1; keep one row per pair with the right label",
    )]


def pairs_not_self(tables: Tables, ctx: CheckContext) -> list[CheckResult]:
    """A record paired with itself says nothing."""
    pairs = tables["pairs"]
    same = pc.fill_null(pc.equal(pairs["left_id"], pairs["right_id"]), False)
    n = pc.sum(same).as_py() or 0
    if not n:
        return [passed("pairs_not_self", "pairs")]
    return [failed(
        "pairs_not_self", "pairs", column="left_id, right_id", count=n,
        examples=pairs.filter(same).slice(0, 5).to_pylist(),
        hint="these pairs match a record with itself; remove them",
    )]


# The standard columns each check reads: of the table it checks, or `table.column`. images_decode reads each
# image column the table has (the gate skips the absent ones).
NEEDS: dict[str, tuple[str, ...]] = {
    "rows_per_class": ("label",),
    "numeric_values_finite": (),  # each numeric column the table has
    "label_leak": ("label",),
    "images_decode": (),
    "pairs_reference_records": ("pairs.left_id", "pairs.right_id", "records.id"),
    "pairs_conflicting_labels": ("pairs.left_id", "pairs.right_id", "pairs.label"),
    "pairs_not_self": ("pairs.left_id", "pairs.right_id"),
}
CUSTOM_CHECKS: dict[str, CustomCheck] = {
    fn.__name__: fn
    for fn in (rows_per_class, numeric_values_finite, label_leak, images_decode, pairs_reference_records,
               pairs_conflicting_labels, pairs_not_self)
}
