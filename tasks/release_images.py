"""A release's images: copied to `images/<opaque id>[-<column>]<ext>`, and their content hashes for the
leak checks. A step: no storage and no Prefect inside; images come through the caller's `fetch_images`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pyarrow as pa

from challenge import catalog
from challenge.storage import file_digest
from challenge.task_spec import Modality, TaskSpec, snake_case

ImageFetcher = Callable[[list[tuple[str, Path]]], None]  # [(image path in the staged images folder, local file)]


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def publish_images(table: pa.Table, spec: TaskSpec, fetch_images: ImageFetcher, out: Path) -> pa.Table:
    """Copy each row's image to images/<opaque id>[-<column>]<ext> and point the table at it."""
    image_columns = [snake_case(c) for c in spec.columns_of(Modality.image)]
    for column in image_columns:
        suffix = "" if len(image_columns) == 1 else f"-{column}"
        originals = table[column].to_pylist()
        ids = table["id"].to_pylist()
        renamed = []
        jobs = []
        for opaque, original in zip(ids, originals):
            if original is None:
                renamed.append(None)
                continue
            name = catalog.image_file(f"{opaque}{suffix}{PurePosixPath(original).suffix.lower()}")
            renamed.append(name)
            jobs.append((original, out / name))
        fetch_images(jobs)
        table = table.set_column(table.column_names.index(column), column, pa.array(renamed, pa.string()))
    return table


def image_digests(table: pa.Table, columns: list[str], folder: Path) -> pa.Table:
    """Replace image paths by the SHA-256 of the image, so duplicates are found by content."""
    for column in columns:
        digests = [sha256_file(folder / p) if p else None for p in table[column].to_pylist()]
        table = table.set_column(table.column_names.index(column), column, pa.array(digests, pa.string()))
    return table
