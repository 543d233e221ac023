"""The same storage behaviour on the local backend and on S3: moto's server and SeaweedFS's, over HTTP."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALL_BACKENDS

from challenge.core.errors import StorageError
from challenge.core.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    download_many,
    join_key,
    map_batched,
    open_storage,
    upload_tree,
    validate_key,
)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage contract on every backend: local, moto, and SeaweedFS (a second, real S3 implementation)."""
    return request.param


def test_write_read_head_and_version_change(storage: Storage) -> None:
    assert storage.head("a/b.txt") is None and not storage.exists("a/b.txt")
    storage.write_bytes("a/b.txt", b"hello")
    first = storage.head("a/b.txt")
    assert first is not None and first.size == 5 and storage.read_bytes("a/b.txt") == b"hello"
    storage.write_bytes("a/b.txt", b"hello, world")
    second = storage.head("a/b.txt")
    assert second is not None and second.size == 12 and second.version != first.version
    storage.write_bytes("a/c.txt", b"hello")
    assert storage.head("a/c.txt").version == first.version  # same content, same version


def test_list_paginates_and_filters_by_prefix(storage: Storage) -> None:
    keys = [f"drops/t{i}/file{j}.csv" for i in range(3) for j in range(3)] + ["other/x.csv"]
    for key in keys:
        storage.write_bytes(key, key.encode())
    listed = [info.key for info in storage.list("drops/", page_size=2)]
    assert sorted(listed) == sorted(k for k in keys if k.startswith("drops/"))
    assert [i.key for i in storage.list("drops/t1/")] == [f"drops/t1/file{j}.csv" for j in range(3)]
    assert sorted(i.key for i in storage.list("", page_size=3)) == sorted(keys)
    assert list(storage.list("nothing/")) == []


def test_copy_delete_and_missing_objects(storage: Storage, tmp_path: Path) -> None:
    storage.write_bytes("src/data.bin", b"\x00\x01" * 100)
    storage.copy("src/data.bin", "dst/data.bin")
    assert storage.read_bytes("dst/data.bin") == b"\x00\x01" * 100
    storage.delete("src/data.bin")
    assert not storage.exists("src/data.bin") and storage.exists("dst/data.bin")
    storage.delete("src/data.bin")  # deleting twice is fine
    with pytest.raises(StorageError, match="no such object"):
        storage.read_bytes("src/data.bin")
    with pytest.raises(StorageError, match="no such object"):
        storage.download_file("src/data.bin", tmp_path / "x")


def test_large_object_streams_and_round_trips(storage: Storage, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for _ in range(20):  # 20 MiB: above the multipart threshold
            fh.write(chunk)
    storage.upload_file("big/big.bin", big)
    info = storage.head("big/big.bin")
    assert info is not None and info.size == 20 << 20
    if isinstance(storage, S3Storage):
        assert "-" in info.version  # multipart ETag: <md5>-<parts>
    out = tmp_path / "out.bin"
    storage.download_file("big/big.bin", out)
    assert out.read_bytes() == big.read_bytes()
    with storage.open_read("big/big.bin") as stream:
        assert stream.read(1 << 20) == chunk


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/path", "a//b", "a/./b", "bad\x00key", "tab\tkey", "C:/win", "a\\b", ""])
def test_unsafe_keys_are_rejected(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError):
        storage.write_bytes(key, b"x")
    with pytest.raises(StorageError):
        validate_key(key)


def key_of(size: int, folder: str = "long") -> str:
    """A key of exactly `size` bytes of UTF-8 (two-byte characters, folder names of at most 199 bytes)."""
    names, left = [folder], size - len(folder)
    while left > 200:
        names.append("é" * 99)
        left -= 199  # "/" and 99 two-byte characters
    return "/".join([*names, "x" * (left - 1)])


def test_keys_past_s3s_limit_are_refused_before_any_request(storage: Storage, backend: str) -> None:
    """S3 keys are at most 1,024 bytes of UTF-8, the location's prefix included (moto accepts longer ones; real
    S3 and SeaweedFS refuse them): every backend refuses a longer key itself, saying by how much, before any request."""
    from challenge.core.storage import MAX_KEY_BYTES, KeyTooLong, key_fits

    room = MAX_KEY_BYTES - (len("some/prefix/") if backend != "local" else 0)  # the storage fixture's S3 prefix
    longest, over = key_of(room), key_of(room + 1)
    assert len(longest.encode()) == room and key_fits(storage, longest) and not key_fits(storage, over)
    storage.write_bytes(longest, b"fits")
    assert storage.read_bytes(longest) == b"fits" and [i.key for i in storage.list("long/")] == [longest]
    for attempt in (lambda: storage.write_bytes(over, b"x"), lambda: storage.head(over), lambda: storage.read_bytes(over),
                    lambda: storage.copy(longest, over)):
        with pytest.raises(KeyTooLong, match=r"1,024 bytes \(UTF-8\), the location.s prefix included: use a shorter") as refused:
            attempt()
        assert refused.value.excess == 1 and len(str(refused.value)) < 400
    assert [i.key for i in storage.list("long/")] == [longest]
    with pytest.raises(KeyTooLong, match="is 1025 bytes"):
        validate_key(key_of(MAX_KEY_BYTES + 1))  # too long on every backend, whatever the prefix


def test_a_local_folder_refuses_a_name_over_255_bytes(tmp_path: Path) -> None:
    """A local file system holds names of at most 255 bytes: such a key is refused by name, not with OSError."""
    from challenge.core.storage import KeyTooLong, key_fits

    storage = LocalStorage(tmp_path)
    assert key_fits(storage, "team/" + "é" * 127 + "x") and not key_fits(storage, "team/" + "é" * 128)
    with pytest.raises(KeyTooLong, match="is 256 bytes; a local folder holds names of at most 255 bytes") as refused:
        storage.write_bytes("team/" + "é" * 128, b"x")
    assert refused.value.excess == 1


def test_local_write_is_atomic_and_leaves_no_temporaries(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("k/v.txt", b"old")
    before = list((tmp_path / "k").iterdir())

    class Boom(Exception):
        pass

    original = Path.write_bytes

    def failing_write(self: Path, data: bytes) -> int:
        original(self, data[:1])
        raise Boom

    Path.write_bytes = failing_write  # type: ignore[method-assign]
    try:
        with pytest.raises(Boom):
            storage.write_bytes("k/v.txt", b"new content")
    finally:
        Path.write_bytes = original  # type: ignore[method-assign]
    assert storage.read_bytes("k/v.txt") == b"old"
    assert list((tmp_path / "k").iterdir()) == before


def test_upload_tree_and_uri(storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "a.txt").write_text("a")
    (tmp_path / "tree" / "sub" / "b.txt").write_text("b")
    keys = upload_tree(storage, tmp_path / "tree", "up")
    assert keys == ["up/a.txt", "up/sub/b.txt"]
    assert storage.read_bytes("up/sub/b.txt") == b"b"
    uri = storage.uri_for("up/a.txt")
    assert uri.endswith("up/a.txt") and (uri.startswith("s3://") == isinstance(storage, S3Storage))


def test_open_storage_picks_backend(tmp_path: Path, s3_endpoint: str) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    s3 = open_storage("s3://bucket/pre/fix/", endpoint_url=s3_endpoint)
    assert isinstance(s3, S3Storage) and s3.bucket == "bucket" and s3.prefix == "pre/fix"
    with pytest.raises(StorageError, match="no bucket"):
        S3Storage("s3:///nobucket")
    assert join_key("a/", "", "/b/", "c") == "a/b/c"


def test_local_storage_lists_but_never_follows_or_opens_irregular_entries(tmp_path: Path) -> None:
    """A symbolic link (to a file or a folder outside), a FIFO: listed with their problem, never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0\n")
    store = LocalStorage(tmp_path / "store")
    store.write_bytes("team-a/penguins/ok.csv", b"id,label\n")
    folder = tmp_path / "store" / "team-a" / "penguins"
    os.symlink(outside / "secret.txt", folder / "link.csv")
    os.symlink(outside, tmp_path / "store" / "team-a" / "linked-folder")
    os.mkfifo(folder / "pipe.csv")
    listed = {info.key: info for info in store.list("")}  # returns at once: the FIFO is not opened
    assert listed["team-a/penguins/ok.csv"].problem is None
    assert listed["team-a/penguins/link.csv"].problem == "a symbolic link"
    assert listed["team-a/linked-folder"].problem == "a symbolic link"
    assert listed["team-a/penguins/pipe.csv"].problem == "a named pipe (FIFO)"
    assert "team-a/linked-folder/secret.txt" not in listed  # the linked folder is not walked
    with pytest.raises(StorageError, match="is a symbolic link; only regular files are read"):
        store.read_bytes("team-a/penguins/link.csv")
    with pytest.raises(StorageError, match="is not a regular file"):
        store.read_bytes("team-a/penguins/pipe.csv")
    with pytest.raises(StorageError, match="leads outside"):
        store.read_bytes("team-a/linked-folder/secret.txt")
    with pytest.raises(StorageError, match="leads outside"):
        store.write_bytes("team-a/linked-folder/planted.txt", b"x")
    assert not (outside / "planted.txt").exists()
    assert store.head("team-a/penguins/link.csv") is None and not store.exists("team-a/penguins/pipe.csv")
    with pytest.raises(StorageError, match="symbolic link"):
        store.download_file("team-a/penguins/link.csv", tmp_path / "copy.csv")


def test_read_limited_reads_the_listed_version_and_no_more(storage: Storage) -> None:
    from challenge.core.storage import ObjectChanged

    storage.write_bytes("team-a/t/s.csv", b"id,label\n" * 100)
    listed = storage.head("team-a/t/s.csv")
    assert storage.read_limited("team-a/t/s.csv", 10_000, listed.version) == b"id,label\n" * 100
    assert len(storage.read_limited("team-a/t/s.csv", 50, listed.version)) == 51  # more than the limit: too large
    storage.write_bytes("team-a/t/s.csv", b"id,label\nx,y\n")  # replaced after the listing
    with pytest.raises(ObjectChanged):
        storage.read_limited("team-a/t/s.csv", 10_000, listed.version)


def test_map_batched_keeps_order_and_bounds_the_work_in_flight() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    results = map_batched(lambda i: i * 2, items(), threads=2, batch=3)
    assert next(results) == 0
    assert len(pulled) <= 2 * 2 * 3 + 3  # at most 2 × threads tasks of `batch` items, not 1,000 futures
    assert list(results) == [2 * i for i in range(1, 1000)]


def test_map_batched_raises_the_first_error_and_starts_no_more() -> None:
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 5:
            raise ValueError("item 5 is bad")
        return i

    with pytest.raises(ValueError, match="item 5 is bad"):
        list(map_batched(work, range(10_000), threads=2, batch=4))
    assert len(started) < 100


def test_upload_file_returns_the_md5_a_listing_reads_back(storage: Storage, tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG" + os.urandom(3000))
    md5 = storage.upload_file("images/picture.png", path)
    assert md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert [i.version for i in storage.list("images/")] == [md5]


def test_upload_tree_and_download_many_round_trip_a_folder_of_many_files(storage: Storage, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    names = [f"d{i % 3}/f{i}.bin" for i in range(70)]  # more than one batch per thread
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(bytes([i]) * (i + 1))
    keys = upload_tree(storage, folder, "up")
    assert keys == sorted(f"up/{n}" for n in names)
    download_many(storage, ((k, tmp_path / "down" / k) for k in keys))
    assert all((tmp_path / "down" / "up" / n).read_bytes() == (folder / n).read_bytes() for n in names)


def test_if_absent_write_creates_once_and_never_overwrites(storage: Storage) -> None:
    from challenge.core.storage import ObjectExists

    storage.write_bytes("results/a.json", b'{"first": true}', if_absent=True)
    with pytest.raises(ObjectExists, match="already exists"):
        storage.write_bytes("results/a.json", b'{"second": true}', if_absent=True)
    assert storage.read_bytes("results/a.json") == b'{"first": true}'
    storage.write_bytes("results/a.json", b'{"first": true}', if_absent=True)  # its own bytes: written (a retried PUT)
    assert [i.key for i in storage.list("results/")] == ["results/a.json"]  # the loser left no temporary behind
    storage.write_bytes("results/a.json", b'{"rewritten": true}')  # a plain write still replaces it
    assert storage.read_bytes("results/a.json") == b'{"rewritten": true}'


def test_racing_if_absent_writes_exactly_one_wins(storage: Storage, backend: str) -> None:
    """Writers racing to create the same key (threads released together): one writes, every other gets
    ObjectExists, and the object holds the winner's bytes. moto checks If-None-Match, then puts, without a
    lock: there racing writers can both win (1 round in 1,500 of 4 writers), so only the losers' error is checked."""
    from challenge.core.storage import ObjectExists

    writers = 4

    def write(key: str, i: int, barrier: threading.Barrier, outcomes: dict[int, str]) -> None:
        barrier.wait()
        try:
            storage.write_bytes(key, f'{{"writer": {i}}}'.encode(), if_absent=True)
            outcomes[i] = "won"
        except ObjectExists:
            outcomes[i] = "lost"

    for round_ in range(3):
        key, barrier, outcomes = f"race/{round_}.json", threading.Barrier(writers), {}
        threads = [threading.Thread(target=write, args=(key, i, barrier, outcomes)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, outcome in outcomes.items() if outcome == "won"]
        assert len(outcomes) == writers and (len(winners) == 1 if backend != "s3" else winners), outcomes
        assert storage.read_bytes(key) in {f'{{"writer": {i}}}'.encode() for i in winners}
