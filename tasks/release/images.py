"""A release's images: copied to `images/<opaque id>[-<column>]<ext>`, and their content hashes for the
leak checks and the manifest (one SHA-256 per image, computed once). A step: no storage and no Prefect
inside; images come through the caller's `fetch_images`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pyarrow as pa

from challenge.core import catalog
from challenge.core.storage import HASH_THREADS, file_digest, map_batched
from challenge.core.task_spec import Modality, TaskSpec, snake_case

ImageFetcher = Callable[[list[tuple[str, Path]]], None]  # [(image path in the staged images folder, local file)]


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def sha256_files(paths: list[Path], digests: dict[Path, str]) -> None:
    """Add the SHA-256 of each of `paths` not yet in `digests` (hashed in a bounded thread pool)."""
    todo = [p for p in dict.fromkeys(paths) if p not in digests]
    digests.update(zip(todo, map_batched(sha256_file, todo, threads=HASH_THREADS)))


def publish_images(table: pa.Table, spec: TaskSpec, fetch_images: ImageFetcher, out: Path,
                   digests: dict[Path, str] | None = None) -> pa.Table:
    """Copy each row's image to images/<opaque id>[-<column>]<ext> and point the table at it; the SHA-256 of
    each copy goes into `digests` (by local path), where image_digests and the manifest find it."""
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
        if digests is not None:
            sha256_files([path for _, path in jobs], digests)
        table = table.set_column(table.column_names.index(column), column, pa.array(renamed, pa.string()))
    return table


def image_digests(table: pa.Table, columns: list[str], folder: Path, digests: dict[Path, str] | None = None) -> pa.Table:
    """Replace image paths by the SHA-256 of the image, so duplicates are found by content (an image already
    in `digests` is not read again)."""
    memo = digests if digests is not None else {}
    for column in columns:
        paths = [folder / p if p else None for p in table[column].to_pylist()]
        sha256_files([p for p in paths if p is not None], memo)
        values = [memo[p] if p is not None else None for p in paths]
        table = table.set_column(table.column_names.index(column), column, pa.array(values, pa.string()))
    return table
