"""One small storage interface (SPEC §3) with a local-directory and an S3 backend.

Keys are relative, '/'-separated paths under the location's root; they are
validated so that no key can escape the root, and refused (KeyTooLong) past
S3's 1,024 bytes with the location's prefix or a local folder's 255 bytes a
name. Writes are atomic: a reader sees the old object or the new one, never a
partial file.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS

from challenge.core.errors import StorageError

if TYPE_CHECKING:
    from challenge.core.config import ChallengeConfig

T = TypeVar("T")
PathT = TypeVar("PathT", str, Path)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MULTIPART_THRESHOLD = 16 * 1024 * 1024
TRANSFER_THREADS = 8  # concurrent transfers (S3 requests, local copies) of one call
TRANSFER_BATCH = 32  # files per thread-pool task: fewer, larger tasks for folders of many small files
LOCAL_HASH_LIMIT = 64 * 1024 * 1024  # local files above this get a size+time version instead of an MD5
_TMP_PREFIX = ".tmp-"
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8), the location's prefix included
MAX_NAME_BYTES = 255  # a local file system's limit on one file or folder name (UTF-8)
_COPY_BUFFER = 64 * 1024  # a larger read buffer is an mmap/munmap per read: 4× slower for a 4 KB file


class ObjectChanged(StorageError):
    """The object is not the version that was listed (replaced in between)."""


class KeyTooLong(StorageError):
    """A key longer than the backend stores; `excess`: by how many bytes; `limit`: the rule, in words."""

    def __init__(self, where: str, excess: int, limit: str):
        super().__init__(f"{where}; {limit}: use a shorter name")
        self.excess, self.limit = excess, limit


S3_KEY_LIMIT = f"S3 keys are at most {MAX_KEY_BYTES:,} bytes (UTF-8), the location's prefix included"
LOCAL_NAME_LIMIT = f"a local folder holds names of at most {MAX_NAME_BYTES} bytes (UTF-8)"


def _cut(key: str, limit: int = 80) -> str:
    return key if len(key) <= limit else key[:limit - 1] + "…"


def _utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class ObjectExists(StorageError):
    """A write with `if_absent` found another object there (another writer was first): nothing was written."""


def _holds(storage: Storage, key: str, data: bytes) -> bool:
    """Whether `key` holds exactly `data`: an `if_absent` write that finds its own bytes there succeeded (S3: a
    PUT retried after a lost response, whose first attempt landed), or lost to an identical write."""
    try:
        return storage.read_limited(key, len(data)) == data
    except StorageError:
        return False


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or head tells about one object."""

    key: str
    size: int
    version: str  # ETag-like: changes whenever the content changes
    modified: datetime
    problem: str | None = None  # local backend: why this entry is not a regular file (never read)


def irregular(path: Path) -> tuple[str | None, os.stat_result]:
    """What a local path is when it is not a regular file (a symbolic link, a FIFO, a device), and its lstat."""
    info = os.lstat(path)
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return None, info
    if stat.S_ISLNK(mode):
        return "a symbolic link", info
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)", info
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device", info
    if stat.S_ISSOCK(mode):
        return "a socket", info
    return "not a regular file", info


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise StorageError."""
    if not isinstance(key, str) or not key:
        raise StorageError("object key is empty")
    if len(key) > MAX_KEY_BYTES // 4 and (size := _utf8_size(key)) > MAX_KEY_BYTES:  # 4 bytes at most a character
        raise KeyTooLong(f"object key {_cut(key)!r} is {size} bytes", size - MAX_KEY_BYTES, S3_KEY_LIMIT)
    if _CONTROL.search(key):
        raise StorageError(f"object key {key!r} contains a control character; rename the file")
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key) or "\\" in key:
        raise StorageError(f"object key {key!r} is absolute or uses backslashes; use a relative '/'-separated path")
    parts = key.split("/")
    if "" in parts or "." in parts or ".." in parts:
        raise StorageError(f"object key {key!r} has an empty, '.' or '..' segment; use a plain relative path")
    return key


def key_fits(storage: Storage, key: str) -> bool:
    """Whether `storage` can hold an object at `key`: a valid key within the backend's limits (S3: 1,024 bytes
    with the location's prefix; a local folder: 255 bytes a name)."""
    try:
        storage.uri_for(key)
    except StorageError:
        return False
    return True


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
    def read_limited(self, key: str, limit: int, version: str | None = None) -> bytes: ...
    def open_read(self, key: str) -> BinaryIO: ...
    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> None: ...
    def upload_file(self, key: str, path: Path) -> str | None: ...
    def download_file(self, key: str, path: Path) -> None: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_many(self, keys: list[str]) -> None: ...
    def uri_for(self, key: str) -> str: ...


HASH_THREADS = 4  # hashlib and file reads release the GIL: a few threads use both cores on many small files


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a local file, streamed (MD5 is what S3 reports as a single-part ETag)."""
    with open(path, "rb") as fh:
        return stream_digest(fh, algorithm)


def stream_digest(stream: BinaryIO, algorithm: str = "md5") -> str:
    """Hex digest of what is left to read of `stream` (a local file, or a stored object's open_read)."""
    head = stream.read(_COPY_BUFFER)
    if len(head) < _COPY_BUFFER:  # a small file in one read (hashlib.file_digest allocates 256 KiB per call)
        return hashlib.new(algorithm, head, usedforsecurity=False).hexdigest()
    digest = hashlib.new(algorithm, head, usedforsecurity=False)
    while chunk := stream.read(_COPY_BUFFER):
        digest.update(chunk)
    return digest.hexdigest()


LARGE_VERSION = "large-"


def _large_version(info: os.stat_result) -> str:
    """The version of a local file above LOCAL_HASH_LIMIT: its size, change time and inode, not its MD5."""
    return f"{LARGE_VERSION}{info.st_size}-{info.st_mtime_ns}-{info.st_ino}"


def file_digest_bytes(data: bytes) -> str:
    """The version (MD5) of bytes, as file_digest gives it for a file."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _copy_hashing(source: BinaryIO, target: BinaryIO) -> str:
    """Copy a stream and return the MD5 of the bytes copied (one read of the source)."""
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := source.read(_COPY_BUFFER):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


class LocalStorage:
    """A directory on the local file system (the embedded default, for one trusted user).

    Only regular files inside the root are read: a symbolic link, a FIFO or a device is listed with
    its `problem` (so the product can say why it is refused) and never opened, hashed or followed.
    """

    transfer_threads = 4  # copies are disk- and GIL-bound: more threads than this only contend (2 cores)

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.uri = str(self.root)
        self._folders: set[str] = set()  # folders this object made (or found): not made again

    def _names(self, key: str) -> list[str]:
        """The folder and file names of a valid `key`, each within MAX_NAME_BYTES (else KeyTooLong)."""
        names = validate_key(key).split("/")
        if len(key) > MAX_NAME_BYTES // 4:
            for name in names:
                if (size := _utf8_size(name)) > MAX_NAME_BYTES:
                    raise KeyTooLong(f"{self.uri}/{_cut(key)}: the name {_cut(name, 40)!r} is {size} bytes",
                                     size - MAX_NAME_BYTES, LOCAL_NAME_LIMIT)
        return names

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*self._names(key))

    def _file(self, key: str) -> str:
        """`key`'s path as a string (what the hot paths hand to os functions, without pathlib's parsing)."""
        return os.path.join(self.uri, *self._names(key))

    def _inside(self, path: PathT) -> PathT:
        """`path`, once its folder is known to resolve inside the root (no symbolic link leads out). Checked
        at every access, never remembered: a folder that a team can write to may become a link at any time."""
        folder = os.path.realpath(os.path.dirname(path))
        if folder != self.uri and not folder.startswith(self.uri + os.sep):
            raise StorageError(f"{path}: its folder leads outside {self.root} (a symbolic link?); "
                               "replace the link with a real folder")
        return path

    def uri_for(self, key: str) -> str:
        return str(self._path(key)) if key else self.uri

    def _info(self, key: str, path: Path) -> ObjectInfo:
        problem, info = irregular(path)
        modified = datetime.fromtimestamp(info.st_mtime, timezone.utc)
        if problem:  # never opened: a FIFO would block, a link would lead elsewhere
            return ObjectInfo(key, 0, f"irregular-{info.st_ino}-{info.st_mtime_ns}", modified, problem)
        if info.st_size > LOCAL_HASH_LIMIT:  # not hashed on every listing: a 1 GB upload would cost seconds each run
            return ObjectInfo(key, info.st_size, _large_version(info), modified)
        return ObjectInfo(key=key, size=info.st_size, version=file_digest(path), modified=modified)

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """All entries whose key starts with `prefix`, in key order (streamed); entries that are not
        regular files (symbolic links, to folders too, FIFOs, devices) come with their `problem`."""
        if prefix:
            validate_key(prefix.rstrip("/"))
        base = self.root
        # Walk only the deepest folder the prefix names, then filter on the rest.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = base.joinpath(*folder.split("/")) if folder else base
        if not start.is_dir() or start.is_symlink():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            dirnames[:] = sorted(d for d in dirnames if d not in linked)
            for name in sorted([*filenames, *linked]):
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    yield self._info(key, Path(dirpath) / name)

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info; None when it is absent or not a regular file."""
        path = self._path(key)
        try:
            info = self._info(key, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if info.problem else info

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def read_limited(self, key: str, limit: int, version: str | None = None) -> bytes:
        """At most `limit` + 1 bytes (more than `limit` means too large); ObjectChanged when the bytes
        are not the listed `version`."""
        with self.open_read(key) as stream:
            data = stream.read(limit + 1)
            opened = os.fstat(stream.fileno())
        if version and version.startswith(LARGE_VERSION):
            changed = _large_version(opened) != version
        else:
            changed = bool(version) and len(data) <= limit and file_digest_bytes(data) != version
        if changed:
            raise ObjectChanged(f"{self.uri_for(key)}: replaced since it was listed")
        return data

    def open_read(self, key: str) -> BinaryIO:
        """Open a regular file inside the root, never following a link (O_NOFOLLOW) nor blocking on a FIFO."""
        path = self._inside(self._file(key))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StorageError(f"{self.uri_for(key)}: no such object") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorageError(f"{self.uri_for(key)}: is a symbolic link; only regular files are read "
                                   "(replace the link with the file itself)") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(f"{self.uri_for(key)}: is not a regular file (a FIFO, a device or a folder); "
                               "only regular files are read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def _temporary(self, key: str) -> tuple[str, int, str]:
        """`key`'s path, and an open temporary file beside it (its folder made once per object, checked every time)."""
        path = self._file(key)
        folder = os.path.dirname(path)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        self._inside(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=folder)
        except FileNotFoundError:  # removed since it was made: make it again
            os.makedirs(folder, exist_ok=True)
            self._inside(path)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=folder)
        return path, fd, tmp

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        path, fd, tmp = self._temporary(key)
        os.close(fd)
        return Path(path), Path(tmp)

    def _write_atomically(self, key: str, fill: Callable[[BinaryIO], str | None]) -> str | None:
        """Write `key` through a temporary file that `fill` writes, renamed over it (removed on error)."""
        path, fd, tmp = self._temporary(key)
        try:
            with os.fdopen(fd, "wb") as out:
                result = fill(out)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return result

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> None:
        """Write `key` atomically; `if_absent`: only if nothing else is there (else ObjectExists), decided by a hard
        link of the full temporary file, which fails when the name exists: of racing writers, exactly one wins."""
        path, tmp = self._atomic_target(key)
        try:
            tmp.write_bytes(data)
            if not if_absent:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    if _holds(self, key, data):
                        return
                    raise ObjectExists(f"{self.uri_for(key)}: already exists (written by another run); "
                                       "not overwritten") from None
        finally:
            tmp.unlink(missing_ok=True)

    def upload_file(self, key: str, path: Path) -> str | None:
        """Copy a local file in atomically; returns the MD5 of the bytes copied (what a listing reads back)."""
        with open(path, "rb") as source:
            return self._write_atomically(key, lambda out: _copy_hashing(source, out))

    def download_file(self, key: str, path: Path) -> None:
        with self.open_read(key) as source:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as target:
                shutil.copyfileobj(source, target, _COPY_BUFFER)

    def copy(self, src: str, dst: str) -> None:
        with self.open_read(src) as source:
            self._write_atomically(dst, lambda out: shutil.copyfileobj(source, out, _COPY_BUFFER))

    def delete(self, key: str) -> None:
        self._inside(self._path(key)).unlink(missing_ok=True)

    def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            self.delete(key)


class S3Storage:
    """An S3 bucket and prefix, through boto3 (any S3-compatible endpoint)."""

    transfer_threads = TRANSFER_THREADS  # requests in flight: network-bound

    def __init__(self, uri: str, endpoint_url: str | None = None, region: str | None = None,
                 location: str | None = None):
        """`location`: the challenge.yaml key naming this URI (storage.<location>), for error messages."""
        if not uri.startswith("s3://"):
            raise StorageError(f"{uri}: not an s3:// URI")
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri}: the URI has no bucket; use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.attempts = attempts = int(os.environ.get("CHALLENGE_S3_MAX_ATTEMPTS", "6"))  # retries with backoff
        config = BotoConfig(retries={"max_attempts": attempts, "mode": "standard"}, region_name=region,
                            max_pool_connections=2 * TRANSFER_THREADS)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                       max_concurrency=TRANSFER_THREADS)
        self.location = location
        self.client.meta.events.register("after-call.s3", self._refuse_missing_bucket)

    def _refuse_missing_bucket(self, parsed: dict, **_: object) -> None:
        """Any request answered NoSuchBucket: one StorageError naming the bucket and the key of challenge.yaml."""
        if isinstance(parsed, dict) and parsed.get("Error", {}).get("Code") == "NoSuchBucket":
            where = f"storage.{self.location} in challenge.yaml" if self.location else "the location's URI"
            raise StorageError(f"{self.uri}: the bucket {self.bucket} does not exist at "
                               f"{self.client.meta.endpoint_url}: create it (aws s3 mb s3://{self.bucket}), or correct "
                               f"{where}")

    def _key(self, key: str) -> str:
        full = join_key(self.prefix, validate_key(key))
        if len(full) > MAX_KEY_BYTES // 4 and (size := _utf8_size(full)) > MAX_KEY_BYTES:
            raise KeyTooLong(f"s3://{self.bucket}/{_cut(full)}: the key is {size} bytes"
                             + (f" with the location's prefix {_cut(self.prefix, 40)}/" if self.prefix else ""),
                             size - MAX_KEY_BYTES, S3_KEY_LIMIT)
        return full

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

    def read_limited(self, key: str, limit: int, version: str | None = None) -> bytes:
        """At most `limit` + 1 bytes of the object, only if its ETag is still the listed `version`
        (If-Match); ObjectChanged otherwise."""
        extra = {"IfMatch": f'"{version}"'} if version else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412"):
                raise ObjectChanged(f"{self.uri_for(key)}: replaced since it was listed") from None
            if code in ("404", "NoSuchKey"):
                raise StorageError(f"{self.uri_for(key)}: no such object") from None
            raise
        try:
            return body.read(limit + 1)
        finally:
            body.close()

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> None:
        """One PUT; `if_absent`: with If-None-Match: * (S3's conditional write), so that of racing writers exactly
        one wins and the others get ObjectExists. A server that ignores the header (an old S3-compatible one)
        overwrites instead: the product's callers stay correct without it (their own guards come first)."""
        if not if_absent:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
            return
        for attempt in range(self.attempts):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "412"):
                    if _holds(self, key, data):
                        return
                    raise ObjectExists(f"{self.uri_for(key)}: already exists (written by another run); "
                                       "not overwritten") from None
                if code != "ConditionalRequestConflict" or attempt + 1 == self.attempts:  # 409: a write in flight
                    raise

    def upload_file(self, key: str, path: Path) -> str | None:
        """One PUT with the file's MD5 (S3 refuses bytes that do not match it) below MULTIPART_THRESHOLD, and
        returns that MD5 (the object's ETag); above it, boto3's transfer manager (parallel parts), None."""
        with open(path, "rb") as fh:
            data = fh.read(MULTIPART_THRESHOLD)
            if len(data) < MULTIPART_THRESHOLD:
                md5 = hashlib.md5(data, usedforsecurity=False)
                etag = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                              ContentMD5=base64.b64encode(md5.digest()).decode())["ETag"].strip('"')
                if etag != md5.hexdigest():
                    raise StorageError(f"{self.uri_for(key)}: stored with ETag {etag}, expected the MD5 {md5.hexdigest()}; "
                                       "upload again")
                return etag
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)
        return None

    def download_file(self, key: str, path: Path) -> None:
        """One GET streamed to the file below MULTIPART_THRESHOLD (again if the stream breaks, as boto3's
        transfer manager does); above it, the transfer manager (parallel ranges)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            for attempt in range(self.attempts):
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                with response["Body"] as body:
                    if response["ContentLength"] >= MULTIPART_THRESHOLD:
                        break
                    try:
                        with open(path, "wb") as out:
                            shutil.copyfileobj(body, out, _COPY_BUFFER)
                        return
                    except S3_RETRYABLE_DOWNLOAD_ERRORS:
                        if attempt + 1 == self.attempts:
                            raise
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise StorageError(f"{self.uri_for(key)}: no such object") from None
            raise

    def copy(self, src: str, dst: str) -> None:
        """One server-side CopyObject (objects up to 5 GB); larger ones through boto3's managed multipart copy."""
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        try:
            self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=self._key(dst))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("InvalidRequest", "EntityTooLarge"):
                raise
            self.client.copy(source, self.bucket, self._key(dst), Config=self.transfer)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_many(self, keys: list[str]) -> None:
        """Up to 1,000 keys per request (S3's DeleteObjects); a key that could not be deleted is an error."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
            done = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if done.get("Errors"):
                first = done["Errors"][0]
                raise StorageError(f"{self.uri_for(first.get('Key', ''))}: could not be deleted ({first.get('Code')}: "
                                   f"{first.get('Message')}); {len(done['Errors'])} key(s) left; run again")


def open_storage(uri: str, endpoint_url: str | None = None, region: str | None = None,
                 location: str | None = None) -> Storage:
    """A backend for `uri`: s3://bucket/prefix, or a local folder (`location`: its key in challenge.yaml)."""
    if uri.startswith("s3://"):
        return S3Storage(uri, endpoint_url=endpoint_url, region=region, location=location)
    return LocalStorage(uri)


def open_location(config: ChallengeConfig, name: str) -> Storage:
    """One of the challenge's four locations: intake, public, private or submissions."""
    s3 = config.storage.s3
    return open_storage(getattr(config.storage, name), s3.endpoint_url, s3.region, location=name)


R = TypeVar("R")


def _apply(fn: Callable[[T], R], batch: list[T]) -> list[R]:
    return [fn(item) for item in batch]


def map_batched(fn: Callable[[T], R], items: Iterable[T], threads: int = TRANSFER_THREADS,
                batch: int = TRANSFER_BATCH) -> Iterator[R]:
    """`fn` over `items` in a pool of `threads` threads, results in order: `batch` items per pool task and at most
    2 × `threads` tasks in flight, so that 100,000 items are never 100,000 futures at once. The first error is
    raised once the tasks in flight end; the rest are not started."""
    source = iter(items)
    batches = iter(lambda: list(islice(source, batch)), [])
    pending: deque[Future[list[R]]] = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        try:
            for chunk in batches:
                pending.append(pool.submit(_apply, fn, chunk))
                if len(pending) >= 2 * threads:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def tree_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under `folder` (following links to files, as `Path.is_file` does) as (relative '/'-separated
    path, path), sorted by relative path."""
    found: list[tuple[str, Path]] = []
    stack = [(folder, "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), name + "/"))
                elif entry.is_file():
                    found.append((name, Path(entry.path)))
    found.sort(key=lambda pair: pair[0])
    return found


def _threads(storage: Storage) -> int:
    return getattr(storage, "transfer_threads", TRANSFER_THREADS)


def upload_many(storage: Storage, jobs: Iterable[tuple[str, Path]]) -> list[str | None]:
    """Upload (key, local path) pairs through a bounded thread pool; returns what each upload_file returned
    (the MD5 of the bytes sent, where the backend tells it)."""
    return list(map_batched(lambda job: storage.upload_file(*job), jobs, _threads(storage)))


def upload_tree(storage: Storage, folder: Path, prefix: str) -> list[str]:
    """Upload every file under `folder` to `prefix/<relative path>` (concurrently); return the keys."""
    jobs = [(join_key(prefix, rel), path) for rel, path in tree_files(folder)]
    upload_many(storage, jobs)
    return [key for key, _ in jobs]


def download_many(storage: Storage, jobs: Iterable[tuple[str, Path]]) -> None:
    """Download (key, local path) pairs through a bounded thread pool."""
    for _ in map_batched(lambda job: storage.download_file(*job), jobs, _threads(storage)):
        pass
