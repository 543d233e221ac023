"""Shared fixtures: a real S3 API (moto's server over HTTP on 127.0.0.1),
one Prefect test harness per session, and both storage backends."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
os.environ["CHALLENGE_NO_SERVER"] = "1"  # the CLI (in-process or a subprocess) never leaves a local Prefect server

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from challenge.core.config import ChallengeConfig, write_config
from challenge.core.storage import LocalStorage, S3Storage, Storage, open_location, upload_tree

BACKENDS = ["local", "s3"]
ALL_BACKENDS = [*BACKENDS, "seaweedfs"]  # with SeaweedFS (tests/s3_servers.py): where storage semantics matter
ENDPOINT_FIXTURES = {"s3": "s3_endpoint", "seaweedfs": "seaweedfs_endpoint"}  # S3 backend → its server's fixture
_bucket_ids = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(log_path: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """moto's standalone server in its own process on a free loopback port; returns it and its URL."""
    port = _free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto server did not start; see {log_path}") from None
            time.sleep(0.1)


# `make test` runs the modules on a few pytest-xdist workers, a whole module per worker (--dist loadfile), in
# collection order (--no-loadscope-reorder). The longest modules (wall time on 2 cores, measured) start
# first, so that none of them is left to run alone at the end; the order changes no test's outcome.
LONGEST_FIRST = ["test_scoring", "test_deployments", "test_season", "test_dask", "test_publish", "test_local_server",
                 "test_hostile_drops", "test_releases_over_time", "test_baselines", "test_fresh_machine",
                 "test_collect_flow", "test_hostile_submissions", "test_board_intervals", "test_faults",
                 "test_scoring_slot"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: a module's own order is kept


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server in its own process, reached over HTTP on loopback."""
    server, endpoint = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS's `weed mini` (a second, real S3 implementation) on loopback; its log is weed.log beside its data."""
    from s3_servers import start_seaweedfs, stop_seaweedfs

    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server.endpoint
    stop_seaweedfs(server)


def new_bucket(endpoint: str) -> str:
    name = f"test-bucket-{next(_bucket_ids)}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's real engine against a temporary API (started once per session)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def prefect_servers_under(root: Path) -> list[int]:
    """PIDs of the `prefect server start` processes whose PREFECT_HOME is under `root` (read from /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        homes = [v[len(b"PREFECT_HOME="):].decode() for v in environ if v.startswith(b"PREFECT_HOME=")]
        if b"prefect" in command and b"server" in command and b"start" in command and homes \
                and Path(homes[0]).resolve().is_relative_to(root.resolve()):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_prefect_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session: no Prefect server started for a test's PREFECT_HOME still runs (else stopped, and an error)."""
    yield
    left = prefect_servers_under(tmp_path_factory.getbasetemp())
    for pid in left:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not left, f"Prefect servers left running by the tests (now killed): PIDs {left}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """An empty storage location on the backend under test."""
    if backend == "local":
        return LocalStorage(tmp_path / "store")
    endpoint = request.getfixturevalue(ENDPOINT_FIXTURES[backend])
    return S3Storage(f"s3://{new_bucket(endpoint)}/some/prefix", endpoint_url=endpoint)


def make_config(backend: str, root: Path, endpoint: str | None, **extra: object) -> ChallengeConfig:
    """A challenge whose four locations live on `backend` (a new bucket on S3); `extra` adds top-level keys."""
    if backend == "local":
        locations, s3 = {n: str(root / n) for n in ("intake", "public", "private", "submissions")}, {}
    else:
        bucket = new_bucket(endpoint or "")
        locations = {n: f"s3://{bucket}/{n}" for n in ("intake", "public", "private", "submissions")}
        s3 = {"endpoint_url": endpoint}
    return ChallengeConfig.model_validate(
        {"name": "test-challenge", "title": "Test", "storage": {**locations, "s3": s3}, **extra})


@pytest.fixture
def config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> ChallengeConfig:
    """A challenge whose four locations live on the backend under test."""
    endpoint = request.getfixturevalue(ENDPOINT_FIXTURES[backend]) if backend in ENDPOINT_FIXTURES else None
    return make_config(backend, tmp_path, endpoint)


_saved: dict[int, tuple[ChallengeConfig, str]] = {}


def saved(config: ChallengeConfig) -> str:
    """`config` written once as a challenge.yaml: the flows take its path, as deployments do."""
    import tempfile

    hit = _saved.get(id(config))
    if hit is None or hit[0] is not config:  # the object is kept alive, so its id is never reused
        path = write_config(config, Path(tempfile.mkdtemp(prefix="challenge-config-")) / "challenge.yaml")
        hit = _saved[id(config)] = (config, str(path))
    return hit[1]


def put_drop(config: ChallengeConfig, folder: Path, contributor: str, task_dir: str | None = None) -> None:
    """Upload a local drop folder to intake as <contributor>/<task_dir>/."""
    upload_tree(open_location(config, "intake"), folder, f"{contributor}/{task_dir or folder.name}")


def stores(config: ChallengeConfig) -> tuple[Storage, Storage, Storage]:
    """The challenge's public, private and submissions locations."""
    return open_location(config, "public"), open_location(config, "private"), open_location(config, "submissions")


EXAMPLES = Path(__file__).resolve().parent.parent / "challenge" / "example_drops"


SHOTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(url: str, profile: Path, screenshot: str | None = None, window: tuple[int, int] = (1200, 1600),
             wait_ms: int | None = None) -> str:
    """Open `url` in headless Chromium: its DOM after load, and with `screenshot` a PNG kept under
    build/test-artifacts/ (looked at by people, not only by asserts). `wait_ms`: virtual time given to a
    single-page app (the Prefect UI) to fetch and draw its data."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is required (make test installs it)"
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
             *([f"--virtual-time-budget={wait_ms}"] if wait_ms else [])]
    if screenshot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        subprocess.run([binary, *flags, f"--screenshot={SHOTS / screenshot}", url], capture_output=True, timeout=120)
        assert (SHOTS / screenshot).stat().st_size > 5000, screenshot
    return subprocess.run([binary, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
