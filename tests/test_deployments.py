"""The deployments on a real Prefect server: `prefect server start` on loopback with its own
PREFECT_HOME, `challenge serve` in another process, runs triggered through the API."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, _free_port, make_config, put_drop
from drops import classification_drop, classification_frame
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from challenge.core.config import ChallengeConfig, write_config
from challenge.core.storage import Storage, open_location

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOTS = REPO / "build" / "test-artifacts"
NAME = "test-challenge"


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up; see {log}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               GX_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="INFO")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free loopback port, SQLite under a temporary PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    log = home / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env={**_env(home), "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", proc, log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def challenge(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChallengeConfig, Path]:
    """A local challenge with two example drops in intake, nothing collected yet."""
    root = tmp_path_factory.mktemp("served")
    config = make_config("local", root, None, name=NAME, policy={"max_submissions_per_day": 100},
                         teams=[{"id": "team-a", "name": "Team A"}, {"id": "team-b", "name": "Team B"}])
    for contributor, task in (("penguin-lab", "penguins"), ("linkage-team", "febrl-people")):
        shutil.copytree(EXAMPLES / contributor / task, root / "intake" / contributor / task)
    return config, write_config(config, root / "challenge.yaml")


@pytest.fixture(scope="module")
def served(server: str, challenge: tuple[ChallengeConfig, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallengeConfig]:
    """`challenge serve` against the server (its runs in subprocesses), until the module's tests are done."""
    config, path = challenge
    log = path.parent / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "challenge"), "--config", str(path), "serve", "--score-every", "1440"],
                                env=_env(tmp_path_factory.mktemp("serve-home"), server), cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        with client_for(server) as client:
            deadline = time.monotonic() + 120
            while len(client.read_deployments(deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[NAME])))) < 5:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"challenge serve did not register its deployments:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield config
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class client_for:
    """A sync Prefect client on `api_url` (the session's test harness stays untouched)."""

    def __init__(self, api_url: str):
        self.settings = temporary_settings({PREFECT_API_URL: api_url})
        self.client: Any = None

    def __enter__(self) -> SyncPrefectClient:
        self.settings.__enter__()
        self.client = get_client(sync_client=True)
        return self.client.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)
        self.settings.__exit__(*exc)


def trigger(api_url: str, deployment: str, timeout: float = 300, **parameters: Any) -> FlowRun:
    with temporary_settings({PREFECT_API_URL: api_url}):
        return run_deployment(f"{deployment}/{NAME}", parameters=parameters, timeout=timeout, poll_interval=1,
                              as_subflow=False)


def wait_final(api_url: str, run_ids: list[Any], timeout: float = 300) -> list[FlowRun]:
    deadline = time.monotonic() + timeout
    with client_for(api_url) as client:
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
            if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
                return sorted(runs, key=lambda r: r.start_time or datetime.max.replace(tzinfo=timezone.utc))
            time.sleep(1)


def artifacts_of(api_url: str, run_id: Any) -> dict[str, Any]:
    with client_for(api_url) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key or f"{a.type}-{a.id}": a for a in found}


def run_log(api_url: str, run_id: Any, quiet_for: float = 5, timeout: float = 90) -> list[str]:
    """The flow run's log lines as the UI shows them, once no new line has arrived for `quiet_for` seconds
    (the run's process sends its last lines after the final state)."""
    deadline, seen, since = time.monotonic() + timeout, -1, time.monotonic()
    with client_for(api_url) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            if len(logs) != seen:
                seen, since = len(logs), time.monotonic()
            elif time.monotonic() - since > quiet_for or time.monotonic() > deadline:
                return [f"{log.level} {log.message}" for log in sorted(logs, key=lambda log: log.timestamp)]
            time.sleep(0.5)


def submit(config: ChallengeConfig, key: str, table: pa.Table) -> None:
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    open_location(config, "submissions").write_bytes(key, out.getvalue())


def penguin_answers(config: ChallengeConfig) -> pa.Table:
    private: Storage = open_location(config, "private")
    return pq.read_table(io.BytesIO(private.read_bytes("releases/r1/penguins/answers.parquet"))).select(["id", "label"])


def results(config: ChallengeConfig) -> list[dict]:
    private = open_location(config, "private")
    return [json.loads(private.read_bytes(i.key)) for i in private.list("results/") if not i.key.endswith(".error.json")]


def test_served_deployments_show_typed_forms_and_one_run_at_a_time(server: str, served: ChallengeConfig) -> None:
    with client_for(server) as client:
        deployments = {client.read_flow(d.flow_id).name: d for d in client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[NAME])))}
    assert set(deployments) == {"collect-datasets", "publish-release", "score-submissions", "run-baselines",
                               "finalize-challenge"}
    score = deployments["score-submissions"]
    props = score.parameter_openapi_schema["properties"]
    assert props["rescore"]["type"] == "boolean" and props["tasks"]["anyOf"][0]["type"] == "array"
    assert "release" in deployments["publish-release"].parameter_openapi_schema["properties"]
    assert score.parameters["config_path"].endswith("challenge.yaml")
    assert [s.schedule.interval for s in score.schedules] == [timedelta(minutes=1440)]
    assert all(d.global_concurrency_limit and d.global_concurrency_limit.limit == 1 for d in deployments.values())
    assert not deployments["publish-release"].schedules and not deployments["finalize-challenge"].schedules
    for deployment in deployments.values():  # the run form explains every parameter
        for name, prop in deployment.parameter_openapi_schema["properties"].items():
            assert len(prop.get("description") or "") > 20, (deployment.name, name)


def test_default_schedule_scores_every_five_minutes(challenge: tuple[ChallengeConfig, Path]) -> None:
    from challenge.flows.deployments import build_deployments

    config, path = challenge
    by_flow = {d.flow_name: d for d in build_deployments(config, str(path), collect_cron="0 6 * * *")}
    assert [s.schedule.interval for s in by_flow["score-submissions"].schedules] == [timedelta(minutes=5)]
    assert [s.schedule.cron for s in by_flow["collect-datasets"].schedules] == ["0 6 * * *"]


@pytest.fixture
def released(server: str, served: ChallengeConfig) -> ChallengeConfig:
    """The served challenge with release r1 (collected and published through the API by the first test that
    needs it: the tests below do not depend on running after another)."""
    if not open_location(served, "public").exists("latest.json"):
        for flow, params in (("collect-datasets", {}), ("publish-release", {"release": "r1"})):
            run = trigger(server, flow, **params)
            assert run.state.is_completed(), run.state.message
    return served


def test_runs_triggered_by_the_api_collect_publish_score_and_leave_artifacts(server: str, served: ChallengeConfig) -> None:
    config = served
    collect = trigger(server, "collect-datasets")
    assert collect.state.is_completed(), collect.state.message
    publish = trigger(server, "publish-release", release="r1")
    assert publish.state.is_completed(), publish.state.message
    assert publish.name == "publish-r1"
    key = penguin_answers(config)
    submit(config, "team-a/penguins/perfect.csv", key)
    rng = np.random.default_rng(3)
    submit(config, "team-b/penguins/random.csv", key.set_column(
        1, "label", pa.array(rng.choice(["Adelie", "Gentoo", "Chinstrap"], key.num_rows))))
    submit(config, "team-b/penguins/short.csv", key.slice(0, key.num_rows - 3))  # invalid: test ids missing
    submit(config, "team-z/penguins/stranger.csv", key)  # rejected: no such team

    run = trigger(server, "score-submissions", rescore=False, tasks=["penguins"])
    assert run.state.is_completed(), run.state.message
    assert run.name.startswith("score-") and run.name.endswith("-penguins")
    board = json.loads(open_location(config, "public").read_bytes("leaderboard/leaderboard.json"))
    entries = board["tasks"]["penguins"]["entries"]
    assert [(e["rank"], e["team"]) for e in entries[:2]] == [(1, "team-a"), (2, "team-b")]

    found = artifacts_of(server, run.id)
    assert {"leaderboard-penguins", "leaderboard-classification", "leaderboard-page", "scoring-run"} <= set(found)
    # no public_url in challenge.yaml: a note saying where the page is, not a link a browser cannot open
    assert found["leaderboard-page"].type == "markdown" and "leaderboard/index.html" in found["leaderboard-page"].data
    assert "storage.public_url" in found["leaderboard-page"].data
    assert json.loads(found["scoring-run"].data) == [{"task": "penguins", "pending": 4, "scored": 2, "invalid": 1,
                                                      "rejected": 1}]
    not_scored = json.loads(found["scoring-run-not-scored"].data)
    assert [(r["team"], r["file"], r["status"]) for r in not_scored] == [
        ("Team B (team-b)", "short.csv", "invalid"), ("team-z", "stranger.csv", "rejected")]
    assert "missing" in not_scored[0]["reason"] and "unknown team 'team-z'" in not_scored[1]["reason"]
    board_rows = json.loads(found["leaderboard-penguins"].data)
    assert board_rows and all(row["95% interval"].startswith("[") for row in board_rows)  # intervals in the UI too
    assert all(len(row["score"].split(".")[1]) == 4 for row in board_rows)  # rounded as on the page
    progress = [a for a in found.values() if a.type == "progress"]
    assert progress and progress[0].data == 100.0
    with client_for(server) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    batch = next(t for t in task_runs if t.name == "score-penguins")
    assert {"task:penguins", "track:classification"} <= set(batch.tags)

    _screenshot_ui(server, run.id, found["leaderboard-penguins"].id, found["scoring-run-not-scored"].id)


def _screenshot_ui(api_url: str, run_id: Any, artifact_id: Any, not_scored_id: Any) -> None:
    """The Prefect UI in headless Chromium: the completed scoring run, its leaderboard artifact and its
    table of files not scored (PNGs kept in build/test-artifacts/ for the record)."""
    import tempfile

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required (make test installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui = api_url.removesuffix("/api")
    pages = {"prefect-ui-score-run.png": f"{ui}/runs/flow-run/{run_id}",
             "prefect-ui-leaderboard-artifact.png": f"{ui}/artifacts/artifact/{artifact_id}",
             "prefect-ui-not-scored-artifact.png": f"{ui}/artifacts/artifact/{not_scored_id}"}
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--virtual-time-budget=20000", "--window-size=1400,1100"]
    with tempfile.TemporaryDirectory() as profile:
        for name, page in pages.items():
            subprocess.run([chromium, *flags, f"--user-data-dir={profile}", f"--screenshot={SHOTS / name}", page],
                           capture_output=True, timeout=180)
            assert (SHOTS / name).stat().st_size > 20_000
        for _ in range(3):  # the page is a single-page app: its DOM fills in once the API answers
            dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--dump-dom",
                                  pages["prefect-ui-leaderboard-artifact.png"]],
                                 capture_output=True, text=True, timeout=180).stdout
            if "Team A" in dom:
                break
    assert "leaderboard-penguins" in dom and "Team A" in dom and "Team B" in dom, "the UI did not show the artifact"
    for _ in range(3):
        dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--dump-dom",
                              pages["prefect-ui-not-scored-artifact.png"]], capture_output=True, text=True, timeout=180).stdout
        if "stranger.csv" in dom:
            break
    assert "short.csv" in dom and "stranger.csv" in dom, "the UI did not show the files not scored"


def test_overlapping_score_triggers_score_each_submission_once(server: str, released: ChallengeConfig) -> None:
    config = released
    key = penguin_answers(config)
    before = {r["submission_id"] for r in results(config)}
    names = [f"team-{'ab'[i % 2]}/penguins/overlap-{i}.csv" for i in range(6)]
    for i, name in enumerate(names):
        submit(config, name, key.slice(0, key.num_rows - i))  # distinct files: some rows missing → invalid

    first = trigger(server, "score-submissions", timeout=0)
    second = trigger(server, "score-submissions", timeout=0)
    runs = wait_final(server, [first.id, second.id])
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    assert runs[0].end_time <= runs[1].start_time, "the two scoring runs overlapped"

    new = [r for r in results(config) if r["submission_id"] not in before]
    assert sorted(r["key"] for r in new) == sorted(names)
    scored_by_run = [json.loads(artifacts_of(server, r.id)["scoring-run"].data) for r in runs]
    pending = [sum(row["pending"] for row in table) for table in scored_by_run]
    assert sorted(pending) == [0, len(names)], f"each submission scored once, by one run: {scored_by_run}"


def test_a_bad_parameter_fails_the_run_with_the_reason(server: str, released: ChallengeConfig) -> None:
    run = trigger(server, "score-submissions", tasks=["no-such-task"])
    assert run.state.is_failed()
    assert "unknown task id(s) no-such-task: the current release has" in run.state.message


def test_a_collect_run_with_a_failed_drop_ends_drops_failed_and_logs_no_traceback(
        server: str, served: ChallengeConfig, tmp_path: Path) -> None:
    """What an organizer sees in the UI: the run red, named DropsFailed, its message naming the drop, and a
    log that says what happened (no traceback, no "unexpected exception": nothing unexpected happened)."""
    frame = classification_frame()
    frame.loc[0, "Item ID"] = None
    put_drop(served, classification_drop(tmp_path / "shop-items", frame), "team-x")
    try:
        run = trigger(server, "collect-datasets", tasks=["shop-items"])
    finally:
        intake = open_location(served, "intake")
        for info in list(intake.list("team-x/")):
            intake.delete(info.key)
    assert run.state.is_failed() and run.state.name == "DropsFailed"
    assert run.state.message == "1 of 1 drop(s) failed the quality gate: team-x/shop-items; each report says what to fix"
    lines = run_log(server, run.id)
    text = "\n".join(lines)
    assert "collection summary: 1 drop(s): 0 passed, 1 failed, 0 unchanged" in text, text
    assert "Finished in state DropsFailed" in text, text
    assert "Traceback" not in text and "unexpected exception" not in text.lower(), text
    assert not [line for line in lines if line.startswith(("40 ", "50 "))], text  # no ERROR line
    _screenshot_run(server, run.id, "prefect-ui-collect-failed-drop.png", "DropsFailed")


def _screenshot_run(api_url: str, run_id: Any, name: str, expect: str) -> None:
    """A flow run's page in the Prefect UI (its log below the graph), kept in build/test-artifacts/."""
    import tempfile

    from conftest import chromium

    page = f"{api_url.removesuffix('/api')}/runs/flow-run/{run_id}"
    with tempfile.TemporaryDirectory() as profile:
        for _ in range(3):  # a single-page app: its DOM fills in once the API answers
            dom = chromium(page, Path(profile), name, window=(1400, 1500), wait_ms=25000)
            if expect in dom:
                break
    assert expect in dom, f"the UI did not show the run's state {expect}"


def test_prefect_yaml_deploys_onto_a_process_pool_and_a_worker_runs_it(
        server: str, released: ChallengeConfig, challenge: tuple[ChallengeConfig, Path],
        tmp_path: Path) -> None:
    """`prefect deploy --all` with deploy/prefect.yaml, then `prefect worker start` scores an upload."""
    config, path = challenge
    env = {**_env(tmp_path / "home", server), "CHALLENGE_NAME": "pooled", "CHALLENGE_CONFIG": str(path),
           "CHALLENGE_CODE_DIR": str(REPO)}
    prefect = [str(BIN / "prefect"), "--no-prompt"]

    def run(*args: str) -> str:
        done = subprocess.run([*prefect, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    run("work-pool", "create", "challenge-pool", "--type", "process")
    run("deploy", "--all", "--prefect-file", "deploy/prefect.yaml")
    with client_for(server) as client:
        deployments = {client.read_flow(d.flow_id).name: d for d in client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["pooled"])))}
    assert set(deployments) == {"collect-datasets", "publish-release", "score-submissions", "run-baselines",
                               "finalize-challenge"}
    score = deployments["score-submissions"]
    assert [(s.schedule.interval, s.active) for s in score.schedules] == [(timedelta(minutes=5), True)]
    assert [(s.schedule.cron, s.active) for s in deployments["collect-datasets"].schedules] == [("0 6 * * *", False)]
    assert all(d.work_pool_name == "challenge-pool" and d.global_concurrency_limit.limit == 1
               for d in deployments.values())
    assert score.parameter_openapi_schema["properties"].keys() == {"config_path", "rescore", "tasks"}

    submit(config, "team-a/penguins/pooled.csv", penguin_answers(config))
    out = run("deployment", "run", "score-submissions/pooled", "--param", 'tasks=["penguins"]')
    assert "score-submissions/pooled" in out
    worker = subprocess.run([*prefect, "worker", "start", "--pool", "challenge-pool", "--run-once"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with client_for(server) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [score.id]}))
    assert runs and all(r.state.is_completed() for r in runs if r.state.is_final()), [r.state for r in runs]
    assert any(r["key"] == "team-a/penguins/pooled.csv" and r["status"] == "scored" for r in results(config))
