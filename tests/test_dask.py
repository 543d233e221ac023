"""Scale-out: gating, publishing and scoring on prefect-dask's DaskTaskRunner, over a real
distributed.LocalCluster of 2 worker processes, give the same results as the default thread runner,
with one Dask task per drop that the workers run side by side."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved
from test_collect_flow import load_examples
from test_publish import stage

from challenge.core import task_runners
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ConfigError
from challenge.core.storage import open_location
from challenge.core.task_runners import make_task_runner, task_runner_from_env, unseen_locations, warn_unseen_storage
from challenge.flows.collect_datasets import collect_datasets
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import score_submissions

pytestmark = pytest.mark.usefixtures("prefect_harness")


def dask() -> object:
    return make_task_runner("dask", workers=2)


def _files(config: ChallengeConfig, release: str) -> dict[str, str]:
    """Every data file of a release with its SHA-256 (cards and Croissant name the release: left out)."""
    public = open_location(config, "public")
    digests = {}
    for task_id in ("penguins", "febrl-people"):
        manifest = json.loads(public.read_bytes(f"releases/{release}/{task_id}/manifest.json"))
        digests[f"{task_id}/answers"] = manifest["answers_sha256"]
        for entry in manifest["files"]:
            if entry["path"].endswith((".csv", ".parquet")):
                digests[f"{task_id}/{entry['path']}"] = entry["sha256"]
    return digests


def _scores(config: ChallengeConfig) -> dict[str, object]:
    private = open_location(config, "private")
    records = [json.loads(private.read_bytes(i.key)) for i in private.list("results/")]
    return {r["key"]: (r["status"], r["metrics"], r["message"]) for r in records}


# The Dask runner does not depend on the storage backend (each worker opens the locations it is given), so each
# end-to-end test runs on one: publishing and scoring on S3, where a cluster's workers on other hosts see the
# data; the gate on local folders, the embedded default (and the warning test covers local folders on workers).
@pytest.mark.parametrize("backend", ["s3"])
def test_dask_runner_publishes_and_scores_like_threads(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = make_config(backend, tmp_path, endpoint, teams=[{"id": "team-a", "name": "A"}])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    stage(config, EXAMPLES / "linkage-team" / "febrl-people", "linkage-team")
    path = saved(config)
    publish_release(config_path=path, release="threads")
    on_dask = publish_release.with_options(task_runner=dask())(config_path=path, release="dask",
                                                               tasks=["febrl-people", "penguins"])  # rebuilt on Dask
    assert on_dask.task_ids == ["febrl-people", "penguins"]
    assert _files(config, "dask") == _files(config, "threads")

    private, submissions = open_location(config, "private"), open_location(config, "submissions")
    rng = np.random.default_rng(11)
    for task_id in ("penguins", "febrl-people"):
        key = pq.read_table(io.BytesIO(private.read_bytes(f"releases/dask/{task_id}/answers.parquet")))
        truth = key.select(["id", "label"])
        noisy = truth.set_column(1, "label", pa.array(rng.permutation(truth["label"].to_numpy(zero_copy_only=False))))
        for name, table in (("truth", truth), ("noisy", noisy), ("short", truth.slice(1))):
            out = io.BytesIO()
            pa_csv.write_csv(table, out)
            submissions.write_bytes(f"team-a/{task_id}/{name}.csv", out.getvalue())

    scored = score_submissions.with_options(task_runner=dask())(config_path=path)
    assert scored.statuses == {"scored": 4, "invalid": 2}
    on_dask_scores = _scores(config)
    board = open_location(config, "public").read_bytes("leaderboard/leaderboard.json")

    for info in private.list("results/"):  # score the same uploads again, on threads
        private.delete(info.key)
    assert score_submissions(config_path=path).statuses == {"scored": 4, "invalid": 2}
    assert _scores(config) == on_dask_scores
    assert json.loads(open_location(config, "public").read_bytes("leaderboard/leaderboard.json"))["tasks"] == \
        json.loads(board)["tasks"]


def test_task_runner_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    monkeypatch.delenv("CHALLENGE_TASK_RUNNER", raising=False)
    assert isinstance(task_runner_from_env(), ThreadPoolTaskRunner)
    monkeypatch.setenv("CHALLENGE_TASK_RUNNER", "dask")
    monkeypatch.setenv("CHALLENGE_DASK_ADDRESS", "tcp://scheduler:8786")
    runner = task_runner_from_env()
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://scheduler:8786"
    monkeypatch.setenv("CHALLENGE_TASK_RUNNER", "ray")
    with pytest.raises(ConfigError, match="unknown task runner"):
        task_runner_from_env()
    monkeypatch.setenv("CHALLENGE_TASK_RUNNER", "dask")
    monkeypatch.setenv("CHALLENGE_DASK_WORKERS", "two")
    with pytest.raises(ConfigError, match="CHALLENGE_DASK_WORKERS"):
        task_runner_from_env()
    monkeypatch.delenv("CHALLENGE_DASK_WORKERS")
    monkeypatch.setenv("CHALLENGE_DASK_CLUSTER_CLASS", "distributed.LocalCluster")  # a cluster per flow run
    with pytest.raises(ConfigError, match="both set"):
        task_runner_from_env()
    monkeypatch.delenv("CHALLENGE_DASK_ADDRESS")
    monkeypatch.setenv("CHALLENGE_DASK_CLUSTER_KWARGS", '{"n_workers": 3, "processes": true}')
    runner = task_runner_from_env()
    assert (runner.cluster_class, runner.cluster_kwargs) == ("distributed.LocalCluster", {"n_workers": 3, "processes": True})
    monkeypatch.setenv("CHALLENGE_DASK_CLUSTER_KWARGS", "n_workers=3")
    with pytest.raises(ConfigError, match="CHALLENGE_DASK_CLUSTER_KWARGS: not valid JSON"):
        task_runner_from_env()
    monkeypatch.setenv("CHALLENGE_DASK_CLUSTER_KWARGS", "[3]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        task_runner_from_env()
    monkeypatch.delenv("CHALLENGE_DASK_CLUSTER_KWARGS")
    monkeypatch.setenv("CHALLENGE_DASK_CLUSTER_CLASS", "dask_nowhere.KubeCluster")
    with pytest.raises(ConfigError, match="dask_nowhere.KubeCluster.*cannot be imported"):
        task_runner_from_env()


@pytest.mark.parametrize("backend", ["local"])
def test_each_drop_is_gated_in_its_own_dask_task_side_by_side(backend: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = make_config(backend, tmp_path, endpoint)
    load_examples(config)  # 3 drops: two tables and an image drop
    path = saved(config)
    on_threads = collect_datasets(config_path=path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, get_task_stream(client=client) as stream:
        runner = make_task_runner("dask", address=cluster.scheduler_address)  # as CHALLENGE_DASK_ADDRESS does
        on_dask = collect_datasets.with_options(task_runner=runner)(config_path=path, force=True)

    def verdicts(summary: object) -> list[tuple[str, str, list[str]]]:
        return sorted((o.drop, o.verdict, o.failures) for o in summary.outcomes)

    assert verdicts(on_dask) == verdicts(on_threads) and len(on_dask.outcomes) == 3
    assert {o.status for o in on_dask.outcomes} != {"unchanged"}  # gated again, not skipped
    gates = [(s["worker"], s["startstops"][-1]["start"], s["startstops"][-1]["stop"])
             for s in stream.data if s["key"].startswith("gate_and_report_drop")]
    assert len(gates) == 3  # one Dask task per drop, run by the workers
    first, second = sorted(gates, key=lambda g: g[1])[:2]  # all submitted at once: the two workers took one each
    assert first[0] != second[0] and second[1] < first[2]


def test_local_folders_are_unseen_by_workers_on_other_hosts() -> None:
    local = make_config("local", Path("/srv/challenge"), None)
    assert unseen_locations(local, "flow-host", {"flow-host"}) == []
    assert unseen_locations(local, "flow-host", set()) == []  # no worker joined yet
    assert unseen_locations(local, "flow-host", {"flow-host", "worker-1"}) == ["intake", "public", "private", "submissions"]
    mixed = ChallengeConfig.model_validate({"name": "mixed", "title": "Mixed", "storage": {
        "intake": "/srv/intake", "public": "s3://b/public", "private": "s3://b/private", "submissions": "s3://b/subs"}})
    assert unseen_locations(mixed, "flow-host", {"worker-1"}) == ["intake"]


def test_a_flow_on_a_cluster_it_did_not_start_warns_of_local_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster
    from prefect import flow

    config = make_config("local", tmp_path, None)

    @flow
    def probe() -> list[str]:
        return warn_unseen_storage(config)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_cluster = probe.with_options(task_runner=make_task_runner("dask", address=cluster.scheduler_address))
        assert on_cluster() == []  # its worker runs on this host
        monkeypatch.setattr(task_runners, "worker_hosts", lambda client: {"worker-host-1"})
        assert on_cluster() == ["intake", "public", "private", "submissions"]
    assert probe() == []  # threads
    assert probe.with_options(task_runner=make_task_runner("dask", workers=1))() == []  # its own LocalCluster, never asked
