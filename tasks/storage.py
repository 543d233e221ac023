"""One small storage interface (SPEC §3) with a local-directory and an S3 backend.

Keys are relative, '/'-separated paths under the location's root; they are
validated so that no key can escape the root. Writes are atomic: a reader
sees the old object or the new one, never a partial file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from challenge.errors import StorageError

if TYPE_CHECKING:
    from challenge.config import ChallengeConfig

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MULTIPART_THRESHOLD = 16 * 1024 * 1024
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or head tells about one object."""

    key: str
    size: int
    version: str  # ETag-like: changes whenever the content changes
    modified: datetime


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise StorageError."""
    if not isinstance(key, str) or not key:
        raise StorageError("object key is empty")
    if _CONTROL.search(key):
        raise StorageError(f"object key {key!r} contains a control character; rename the file")
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key) or "\\" in key:
        raise StorageError(f"object key {key!r} is absolute or uses backslashes; use a relative '/'-separated path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StorageError(f"object key {key!r} has an empty, '.' or '..' segment; use a plain relative path")
    return key


def is_valid_key(key: str) -> bool:
    """Whether validate_key accepts `key`."""
    try:
        validate_key(key)
    except StorageError:
        return False
    return True


def join_key(*parts: str) -> str:
    """Join key segments with '/', skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class Storage(Protocol):
    """The operations every backend offers."""

    uri: str

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def open_read(self, key: str) -> BinaryIO: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def upload_file(self, key: str, path: Path) -> None: ...
    def download_file(self, key: str, path: Path) -> None: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def uri_for(self, key: str) -> str: ...


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a local file, read in 1 MiB chunks (MD5 is what S3 reports as a single-part ETag)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalStorage:
    """A directory on the local file system (the embedded default)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def uri_for(self, key: str) -> str:
        return str(self._path(key)) if key else self.uri

    def _info(self, key: str, path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            version=file_digest(path),
            modified=datetime.fromtimestamp(stat.st_mtime, timezone.utc),
        )

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """All objects whose key starts with `prefix`, in key order (streamed)."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        base = self.root
        # Walk only the deepest folder the prefix names, then filter on the rest.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = base.joinpath(*folder.split("/")) if folder else base
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            for name in sorted(filenames):
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    yield self._info(key, Path(dirpath) / name)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return self._info(key, path) if path.is_file() else None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self.open_read(key).read()

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise StorageError(f"{self.uri_for(key)}: no such object") from None

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        os.close(fd)
        return path, Path(tmp)

    def write_bytes(self, key: str, data: bytes) -> None:
        path, tmp = self._atomic_target(key)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def upload_file(self, key: str, path: Path) -> None:
        target, tmp = self._atomic_target(key)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise StorageError(f"{self.uri_for(key)}: no such object")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    def copy(self, src: str, dst: str) -> None:
        self.upload_file(dst, self._path(src))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Storage:
    """An S3 bucket and prefix, through boto3 (any S3-compatible endpoint)."""

    def __init__(self, uri: str, endpoint_url: str | None = None, region: str | None = None):
        if not uri.startswith("s3://"):
            raise StorageError(f"{uri}: not an s3:// URI")
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri}: the URI has no bucket; use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        attempts = int(os.environ.get("CHALLENGE_S3_MAX_ATTEMPTS", "6"))  # retries with exponential backoff
        config = BotoConfig(retries={"max_attempts": attempts, "mode": "standard"}, region_name=region)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)

    def _key(self, key: str) -> str:
        return join_key(self.prefix, validate_key(key))

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1:] if self.prefix else full_key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}" if key else self.uri

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """All objects whose key starts with `prefix`, one page at a time."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        full_prefix = (self.prefix + "/" if self.prefix else "") + prefix
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": page_size}
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._rel(obj["Key"]),
                        size=obj["Size"],
                        version=obj["ETag"].strip('"'),
                        modified=obj["LastModified"],
                    )
        except ClientError as exc:
            raise StorageError(f"{self.uri}: cannot list objects: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key, resp["ContentLength"], resp["ETag"].strip('"'), resp["LastModified"])

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise StorageError(f"{self.uri_for(key)}: no such object") from None
            raise

    def read_bytes(self, key: str) -> bytes:
        return self.open_read(key).read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def upload_file(self, key: str, path: Path) -> None:
        """Streamed upload; multipart above MULTIPART_THRESHOLD."""
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise StorageError(f"{self.uri_for(key)}: no such object") from None
            raise

    def copy(self, src: str, dst: str) -> None:
        self.client.copy(
            {"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst), Config=self.transfer
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def open_storage(uri: str, endpoint_url: str | None = None, region: str | None = None) -> Storage:
    """A backend for `uri`: s3://bucket/prefix, or a local folder."""
    if uri.startswith("s3://"):
        return S3Storage(uri, endpoint_url=endpoint_url, region=region)
    return LocalStorage(uri)


def open_location(config: ChallengeConfig, name: str) -> Storage:
    """One of the challenge's four locations: intake, public, private or submissions."""
    s3 = config.storage.s3
    return open_storage(getattr(config.storage, name), s3.endpoint_url, s3.region)


TRANSFER_THREADS = 8


def upload_tree(storage: Storage, folder: Path, prefix: str) -> list[str]:
    """Upload every file under `folder` to `prefix/<relative path>` (concurrently); return the keys."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    keys = [join_key(prefix, p.relative_to(folder).as_posix()) for p in files]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(storage.upload_file, keys, files))
    return keys


def download_many(storage: Storage, jobs: list[tuple[str, Path]]) -> None:
    """Download (key, local path) pairs concurrently."""
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(lambda job: storage.download_file(*job), jobs))
