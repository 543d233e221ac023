"""Small generated drops for tests: a valid base, then one mutation per bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from PIL import Image

WORDS = ["red", "fast", "small", "wooden", "steel", "bright", "soft", "large", "round", "cheap", "fancy", "old"]


def classification_frame(per_class: int = 8, classes: tuple[str, ...] = ("cat", "dog", "bird"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = per_class * len(classes)
    return pd.DataFrame({
        "Item ID": [f"item-{i:03d}" for i in range(n)],
        "Title": [" ".join(rng.choice(WORDS, 3)) for _ in range(n)],
        "Price": rng.uniform(1, 100, n).round(2),
        "Colour": rng.choice(["blue", "green", "grey", "pink"], n),
        "kind": np.repeat(classes, per_class),
    })


def classification_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "task_id": "shop-items",
        "kind": "classification",
        "title": "Shop items",
        "description": "Classify items.",
        "owner": "team-x",
        "license": "CC0-1.0",
        "metric": "macro_f1",
        "id_column": "Item ID",
        "label_column": "kind",
        "columns": {"Title": "text", "Price": "numeric", "Colour": "categorical"},
        "data": "items.csv",
        "split": {"test_fraction": 0.2, "seed": 1},
    }
    spec.update(overrides)
    return spec


def write_drop(folder: Path, spec: dict[str, Any] | None, tables: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if spec is not None:
        (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    for name, frame in tables.items():
        path = folder / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        elif name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True)
    return folder


def classification_drop(folder: Path, frame: pd.DataFrame | None = None, **spec_overrides: Any) -> Path:
    spec = classification_spec(**spec_overrides)
    frame = classification_frame() if frame is None else frame
    return write_drop(folder, spec, {spec["data"]: frame})


def image_drop(folder: Path, n_per_class: int = 6) -> Path:
    """Two classes of tiny PNGs: dark and light squares."""
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    rows = []
    for label, value in (("dark", 20), ("light", 230)):
        for i in range(n_per_class):
            name = f"{label}-{i}.png"
            Image.fromarray(np.full((4, 4), value + i, dtype=np.uint8), mode="L").save(folder / "imgs" / name)
            rows.append({"pid": f"{label}-{i}", "picture": name, "label": label})
    spec = classification_spec(
        task_id="squares", id_column="pid", label_column="label", columns={"picture": "image"},
        data="pictures.csv", images="imgs", metric="accuracy",
    )
    return write_drop(folder, spec, {"pictures.csv": pd.DataFrame(rows)})


def matching_tables(entities: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    names = [f"{a} {b}" for a, b in zip(rng.choice(WORDS, entities), rng.choice(WORDS, entities))]
    records = pd.DataFrame({
        "rid": [f"e{i}-{v}" for i in range(entities) for v in ("a", "b")],
        "name": [n + suffix for n in names for suffix in ("", " x")],
        "city": [c for c in rng.choice(["paris", "rome", "oslo"], entities) for _ in range(2)],
    })
    positives = [(f"e{i}-a", f"e{i}-b", 1) for i in range(entities)]
    negatives = [(f"e{i}-a", f"e{(i + 1) % entities}-b", 0) for i in range(entities)]
    pairs = pd.DataFrame(positives + negatives, columns=["left_id", "right_id", "label"])
    return records, pairs


def matching_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "task_id": "companies",
        "kind": "matching",
        "title": "Companies",
        "owner": "team-m",
        "license": "CC0-1.0",
        "metric": "f1",
        "id_column": "rid",
        "columns": {"name": "text", "city": "categorical"},
        "records": "records.csv",
        "pairs": "pairs.csv",
    }
    spec.update(overrides)
    return spec


def matching_drop(folder: Path, records: pd.DataFrame | None = None, pairs: pd.DataFrame | None = None, **overrides: Any) -> Path:
    default_records, default_pairs = matching_tables()
    return write_drop(folder, matching_spec(**overrides), {
        "records.csv": default_records if records is None else records,
        "pairs.csv": default_pairs if pairs is None else pairs,
    })


VOCABULARY = [f"{a}{b}" for a in ("neu", "gra", "sto", "lin", "bay", "opt", "ker", "dee", "spa", "tem")
              for b in ("ral", "ph", "chastic", "ear", "esian", "imal", "nel", "p", "rse", "poral")]
AUTHORS = [f"{last}, {first}." for last in ("Smith", "Lee", "Garcia", "Chen", "Kumar", "Novak", "Okafor", "Rossi")
           for first in "ABCDE"]


def papers_frame(n: int = 400, seed: int = 5) -> pd.DataFrame:
    """A bibliographic task: predict a paper's venue from its title, authors and year.

    Authors come from a pool of 40, so most test rows share their authors with some train row, as in
    real bibliographies; titles are 8 to 12 words, so two papers rarely share most of their words.
    """
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "paper_id": [f"p{i:04d}" for i in range(n)],
        "title": [" ".join(rng.choice(VOCABULARY, rng.integers(8, 13))) for _ in range(n)],
        "authors": rng.choice(AUTHORS, n),
        "year": rng.integers(2000, 2021, n),
        "venue": rng.choice(["ICML", "NeurIPS", "KDD", "VLDB"], n),
    })


def with_near_copies(frame: pd.DataFrame, copies: int, seed: int = 6) -> pd.DataFrame:
    """`copies` papers copied under a new id with one word of the title changed (a planted leak)."""
    rng = np.random.default_rng(seed)
    planted = frame.sample(copies, random_state=seed).copy()
    planted["paper_id"] = [f"copy-{i:04d}" for i in range(copies)]
    titles = []
    for title in planted["title"]:
        words = title.split()
        words[int(rng.integers(len(words)))] = "changed"
        titles.append(" ".join(words))
    planted["title"] = titles
    return pd.concat([frame, planted], ignore_index=True)


def papers_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "task_id": "venues", "kind": "classification", "title": "Paper venues", "owner": "library-team",
        "license": "CC0-1.0", "metric": "macro_f1", "id_column": "paper_id", "label_column": "venue",
        "columns": {"title": "text", "authors": "text", "year": "numeric"},
        "data": "papers.csv", "split": {"test_fraction": 0.2, "seed": 3},
    }
    spec.update(overrides)
    return spec


def papers_drop(folder: Path, frame: pd.DataFrame | None = None, **overrides: Any) -> Path:
    return write_drop(folder, papers_spec(**overrides), {"papers.csv": papers_frame() if frame is None else frame})


# --- hostile drops (issue 22): each small on disk, each meant to cost far more than its size ---------------


def parquet_bomb(path: Path, rows: int = 334, value_mb: int = 10) -> Path:
    """A Parquet file of a few KB whose text column holds one `value_mb` MB value under every row: its
    dictionary page compresses to almost nothing, and decoded as plain text it is rows × value_mb MB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = classification_frame(per_class=-(-rows // 3))[:rows]
    columns = {name: pa.array(frame[name].tolist()) for name in ("Item ID", "Price", "Colour", "kind")}
    columns["Title"] = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * (value_mb << 20)]))
    table = pa.table({name: columns[name] for name in ("Item ID", "Title", "Price", "Colour", "kind")})
    pq.write_table(table, path, compression="zstd", compression_level=19, store_schema=False)  # read back as plain text
    return path


def wide_csv(path: Path, undeclared: int = 50_000, per_class: int = 40) -> Path:
    """The shop items with `undeclared` extra columns that task.yaml does not declare (about 12 MB)."""
    frame = classification_frame(per_class=per_class)
    extra = ",".join(f"u{i}" for i in range(undeclared))
    cells = ",".join("1" for _ in range(undeclared))
    lines = [",".join(frame.columns) + "," + extra]
    lines += [",".join(str(v) for v in row) + "," + cells for row in frame.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hanging_spec(**overrides: Any) -> dict[str, Any]:
    """The shop items' task.yaml with an expectation whose JSON-schema pattern backtracks for hours on the
    titles of hanging_frame() (Python's re engine, which no thread can interrupt)."""
    return classification_spec(expectations=[{
        "type": "expect_column_values_to_match_json_schema",
        "kwargs": {"column": "Title", "json_schema": {"type": "string", "pattern": "^(a+)+$"}},
    }], **overrides)


def hanging_frame() -> pd.DataFrame:
    frame = classification_frame()
    frame["Title"] = '"' + "a" * 40 + '!"'  # a JSON string that the pattern almost matches
    return frame
