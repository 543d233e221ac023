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

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from challenge.config import ChallengeConfig, write_config
from challenge.storage import LocalStorage, S3Storage, Storage, open_location, upload_tree

BACKENDS = ["local", "s3"]
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


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server in its own process, reached over HTTP on loopback."""
    server, endpoint = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """An empty storage location on the backend under test."""
    if backend == "local":
        return LocalStorage(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
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
    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
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


def chromium(url: str, profile: Path, screenshot: str | None = None, window: tuple[int, int] = (1200, 1600)) -> str:
    """Open `url` in headless Chromium: its DOM after load, and with `screenshot` a PNG kept under
    build/test-artifacts/ (looked at by people, not only by asserts)."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is required (make test installs it)"
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
    if screenshot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        subprocess.run([binary, *flags, f"--screenshot={SHOTS / screenshot}", url], capture_output=True, timeout=120)
        assert (SHOTS / screenshot).stat().st_size > 5000, screenshot
    return subprocess.run([binary, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
