"""Put a built release folder into storage and check every object; clear what an interrupted run left."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from challenge.storage import TRANSFER_THREADS, Storage, file_digest, upload_tree
from challenge.tasks.release_build import PublishError
from challenge.tasks.release_images import sha256_file


def upload_and_verify(storage: Storage, local_dir: Path, prefix: str) -> list[str]:
    """Upload every file under `local_dir` concurrently, then check each object's size and checksum."""
    keys = upload_tree(storage, local_dir, prefix)
    files = [local_dir / k[len(prefix) + 1:] for k in keys]

    def verify(key: str, path: Path) -> None:
        info = storage.head(key)
        if info is None or info.size != path.stat().st_size:
            raise PublishError(f"{storage.uri_for(key)}: uploaded object is missing or has the wrong size")
        if "-" not in info.version:  # a single-part object's version is the MD5 of its bytes
            if info.version != file_digest(path):
                raise PublishError(f"{storage.uri_for(key)}: uploaded object's MD5 differs from the built file")
            return
        digest = hashlib.sha256()
        with storage.open_read(key) as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256_file(path):
            raise PublishError(f"{storage.uri_for(key)}: uploaded object's SHA-256 differs from the built file")

    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(verify, keys, files))
    return keys


def clear_incomplete(storage: Storage, prefix: str) -> int:
    """Remove what an interrupted run left under `prefix`; returns how many objects."""
    keys = [info.key for info in storage.list(prefix + "/")]
    storage.delete_many(keys)
    return len(keys)

