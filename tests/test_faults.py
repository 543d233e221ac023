"""The S3 endpoint vanishes in the middle of a publish and of a scoring run (a TCP proxy in front of
moto that the test cuts after a number of requests), then comes back: one `error:` line, nothing
half-done visible, and the next run completes with exactly one result per submission and an exact quota."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, _free_port, make_config, saved
from test_publish import stage

from challenge.app.cli import main

pytestmark = pytest.mark.usefixtures("prefect_harness")


class CuttableProxy:
    """A TCP proxy on loopback to `target_port`; `cut_after(n)` refuses and drops every connection once
    n more HTTP requests went through, `drop_after(n)` then keeps accepting connections but closes each on
    its next request, unanswered; `restore()` lets them through again."""

    def __init__(self, target_port: int):
        self.target, self.port = target_port, _free_port()
        self.requests, self.limit, self.dropping = 0, None, False
        self.lock, self.sockets = threading.Lock(), set()
        self.listener: socket.socket | None = None
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        with self.lock:
            self.limit, self.dropping = None, False
        if self.listener is not None:  # dropping, not cut: still listening
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut_after(self, requests: int) -> None:
        with self.lock:
            self.limit = self.requests + requests

    def drop_after(self, requests: int) -> None:
        with self.lock:
            self.limit, self.dropping = self.requests + requests, True

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = list(self.sockets), set()
        for sock in [listener, *sockets]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets.update({client, upstream})
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        try:
            while data := source.recv(65536):
                if outbound:
                    with self.lock:
                        self.requests += data.count(b" HTTP/1.1\r\n")
                        over = self.limit is not None and self.requests >= self.limit
                    if over:
                        if not self.dropping:
                            self.cut()
                        return  # dropping: this connection only, closed below before any answer
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass


@pytest.fixture
def proxy(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttableProxy]:
    monkeypatch.setenv("CHALLENGE_S3_MAX_ATTEMPTS", "2")  # fail fast while the endpoint is away
    cuttable = CuttableProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    yield cuttable
    cuttable.cut()


def direct(config, s3_endpoint: str, location: str, key: str) -> bytes | None:  # noqa: ANN001
    """An object read past the proxy (what participants would see)."""
    bucket, prefix = getattr(config.storage, location)[len("s3://"):].split("/", 1)
    try:
        return boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
    except Exception:  # noqa: BLE001
        return None


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, captured.err
    return errors[0]


def test_endpoint_lost_during_publish(proxy: CuttableProxy, s3_endpoint: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("s3", tmp_path, proxy.url)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    stage(config, EXAMPLES / "linkage-team" / "febrl-people", "linkage-team")
    path = saved(config)
    assert main(["--config", path, "publish", "--release", "r1"]) == 0
    capsys.readouterr()
    proxy.cut_after(30)  # part-way through the uploads of r2 (both tasks rebuilt, not carried over)
    rebuild = ["--task", "penguins", "--task", "febrl-people"]
    assert main(["--config", path, "publish", "--release", "r2", *rebuild]) != 0
    assert "S3 endpoint unreachable" in one_error_line(capsys)
    proxy.restore()
    assert json.loads(direct(config, s3_endpoint, "public", "latest.json"))["release"] == "r1"  # r2 never visible
    assert direct(config, s3_endpoint, "public", "releases/r2/release.json") is None
    assert main(["--config", path, "publish", "--release", "r2", *rebuild]) == 0  # the rerun completes it
    assert json.loads(direct(config, s3_endpoint, "public", "latest.json"))["release"] == "r2"


def test_endpoint_lost_during_scoring(proxy: CuttableProxy, s3_endpoint: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("s3", tmp_path, proxy.url, policy={"max_submissions_per_day": 3},
                         teams=[{"id": "team-a", "name": "A"}, {"id": "team-b", "name": "B"}])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    path = saved(config)
    assert main(["--config", path, "publish", "--release", "r1"]) == 0
    answers = pq.read_table(io.BytesIO(direct(config, s3_endpoint, "private", "releases/r1/penguins/answers.parquet")))
    out = io.BytesIO()
    pa_csv.write_csv(answers.select(["id", "label"]), out)
    keys = [f"team-a/penguins/s{i}.csv" for i in range(5)] + [f"team-b/penguins/s{i}.csv" for i in range(2)]
    bucket, prefix = config.storage.submissions[len("s3://"):].split("/", 1)
    for key in keys:
        boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=out.getvalue())
    capsys.readouterr()
    proxy.cut_after(12)  # after the listings, among the reads and writes of results
    assert main(["--config", path, "score"]) != 0
    captured = capsys.readouterr()  # either the run stopped (one error line) or it left retryable errors
    assert "Traceback" not in captured.out + captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert (len(errors) == 1 and "S3 endpoint unreachable" in errors[0]) or (
        not errors and "internal error, retried on the next run" in captured.out), captured
    proxy.restore()
    for _ in range(2):  # the next runs heal whatever the cut left
        main(["--config", path, "score"])
    capsys.readouterr()
    private = [json.loads(direct(config, s3_endpoint, "private", i["Key"].split("/", 1)[1]))
               for i in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
                   Bucket=bucket, Prefix="private/results/").get("Contents", [])
               if not i["Key"].endswith(".error.json")]
    assert sorted(r["key"] for r in private) == sorted(keys)  # exactly one result each
    team_a = sorted(r["status"] for r in private if r["team"] == "team-a")
    assert team_a == ["rejected: quota", "rejected: quota", "scored", "scored", "scored"]  # the quota is exact
    assert all(direct(config, s3_endpoint, "submissions", key + ".result.json") for key in keys)


@pytest.mark.parametrize("command", ["publish", "score"])
def test_a_connection_dropped_mid_run_says_unreachable_and_rerun_is_safe(
        command: str, proxy: CuttableProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The endpoint accepts connections but drops each request unanswered (botocore's ConnectionClosedError,
    not a refused connection): the same one line as an unreachable endpoint, then the rerun completes."""
    config = make_config("s3", tmp_path, proxy.url, teams=[{"id": "team-a", "name": "A"}])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    path = saved(config)
    assert main(["--config", path, "publish", "--release", "r1"]) == 0
    args = ["publish", "--release", "r2", "--task", "penguins"] if command == "publish" else ["score"]
    capsys.readouterr()
    proxy.drop_after(5)
    assert main(["--config", path, *args]) != 0
    line = one_error_line(capsys)
    assert line.startswith("error: S3 endpoint unreachable (ConnectionClosedError") and "rerun is safe" in line, line
    proxy.restore()
    assert main(["--config", path, *args]) == 0


def test_a_missing_bucket_names_the_bucket_and_the_key_of_challenge_yaml(s3_endpoint: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config("s3", tmp_path, s3_endpoint)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    gone = config.model_copy(update={"storage": config.storage.model_copy(update={"public": "s3://no-such-bucket/public"})})
    capsys.readouterr()
    assert main(["--config", saved(gone), "publish", "--release", "r1"]) != 0
    line = one_error_line(capsys)
    assert ("error: s3://no-such-bucket/public: the bucket no-such-bucket does not exist at " in line
            and "create it (aws s3 mb s3://no-such-bucket), or correct storage.public in challenge.yaml" in line), line


def test_every_kind_of_lost_connection_gets_the_unreachable_line() -> None:
    """Refused, dropped before the answer, timed out, cut while streaming: one line saying a rerun is safe."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    from challenge.app.terminal import error_line

    url = "http://s3.example:9000"
    for exc in (EndpointConnectionError(endpoint_url=url), ConnectionClosedError(endpoint_url=url),
                ReadTimeoutError(endpoint_url=url), ConnectTimeoutError(endpoint_url=url),
                ResponseStreamingError(error="reset by peer"), IncompleteReadError(actual_bytes=1, expected_bytes=9)):
        line = error_line(exc)
        assert line.startswith(f"error: S3 endpoint unreachable ({type(exc).__name__}") and "rerun is safe" in line, line
        assert "--debug" not in line
