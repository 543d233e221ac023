"""Put a built release folder into storage and check every object; clear what an interrupted run left."""

from __future__ import annotations

import hashlib
from pathlib import Path

from challenge.core.storage import ObjectInfo, Storage, file_digest, join_key, map_batched, tree_files, upload_many
from challenge.tasks.release.build import PublishError
from challenge.tasks.release.images import sha256_file


def _read_back(storage: Storage, key: str, path: Path, info: ObjectInfo) -> None:
    """Check an object whose upload gave no MD5 (or whose version is not one): size, then MD5 or SHA-256."""
    if info.size != path.stat().st_size:
        raise PublishError(f"{storage.uri_for(key)}: uploaded object has the wrong size")
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


def upload_and_verify(storage: Storage, local_dir: Path, prefix: str) -> list[str]:
    """Upload every file under `local_dir` through a bounded thread pool, then check each object against one
    listing of `prefix`: its version must be the MD5 of the bytes the upload sent (local: the listing reads
    the stored file back; S3: the ETag, which S3 also checked against the MD5 sent with the PUT). Objects
    without an MD5 (multipart, large local files) are read back and compared by SHA-256."""
    jobs = [(join_key(prefix, rel), path) for rel, path in tree_files(local_dir)]
    sent = upload_many(storage, jobs)
    listed = {info.key: info for info in storage.list(f"{prefix}/" if prefix else "")}
    unchecked = []
    for (key, path), md5 in zip(jobs, sent):
        info = listed.get(key)
        if info is None:
            raise PublishError(f"{storage.uri_for(key)}: uploaded object is missing; publish again")
        if md5 is None or "-" in info.version:
            unchecked.append((key, path, info))
        elif info.version != md5:
            raise PublishError(f"{storage.uri_for(key)}: uploaded object's MD5 differs from the built file; publish again")
    for _ in map_batched(lambda job: _read_back(storage, *job), unchecked):
        pass
    return [key for key, _ in jobs]


def clear_incomplete(storage: Storage, prefix: str) -> int:
    """Remove what an interrupted run left under `prefix`; returns how many objects."""
    keys = [info.key for info in storage.list(prefix + "/")]
    storage.delete_many(keys)
    return len(keys)
