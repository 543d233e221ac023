"""The production templates in deploy/ hold together: prefect.yaml matches `challenge serve`,
the Kubernetes base job template declares every variable it uses, the Dockerfile copies what
the package needs, and docker-compose wires the worker to the server, the database and S3."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from challenge.core.config import ChallengeConfig
from challenge.flows.deployments import SCORE_EVERY_MINUTES, build_deployments

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
REPO = DEPLOY.parent


def test_prefect_yaml_declares_the_served_deployments() -> None:
    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    declared = {d["entrypoint"]: d for d in spec["deployments"]}
    config = ChallengeConfig.model_validate({"name": "x-challenge", "title": "x", "storage": {
        n: f"/tmp/x/{n}" for n in ("intake", "public", "private", "submissions")}})
    served = build_deployments(config, "/tmp/x/challenge.yaml")
    assert sorted(declared) == sorted(d.entrypoint for d in served)
    for deployment in served:
        entry = declared[deployment.entrypoint]
        assert entry["concurrency_limit"]["limit"] == 1 == deployment.concurrency_limit
        assert entry["concurrency_limit"]["collision_strategy"] == deployment.concurrency_options.collision_strategy.value
        intervals = [s["interval"] for s in entry["schedules"] if "interval" in s]
        assert intervals == [s.schedule.interval.total_seconds() for s in deployment.schedules
                             if hasattr(s.schedule, "interval")]
    score = declared["challenge.flows.score_submissions.score_submissions"]
    assert score["schedules"] == [{"interval": SCORE_EVERY_MINUTES * 60, "active": True}]
    for entry in declared.values():  # module paths of the installed package
        module, func = entry["entrypoint"].rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), func), Flow)


def test_kubernetes_job_template_declares_every_variable_it_uses() -> None:
    template = json.loads((DEPLOY / "k8s-base-job-template.json").read_text())
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"])))
    declared = set(template["variables"]["properties"])
    assert used <= declared, f"undeclared: {sorted(used - declared)}"
    env = template["variables"]["properties"]["env"]["default"]
    assert env["CHALLENGE_CONFIG"].startswith("/config/")
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == "{{ command }}" and container["image"] == "{{ image }}"


def test_dockerfile_copies_every_package_and_installs_the_dask_extra() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    packages = set(package_dirs.values())
    assert packages and packages <= copied
    assert all((REPO / source).exists() for source in copied)
    assert "pip install '.[dask]'" in dockerfile
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("prefect-dask") for dep in extras["dask"])


def test_compose_runs_server_on_postgres_a_worker_and_s3() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "minio", "worker", "deployer"} <= set(services)
    server_env = services["prefect-server"]["environment"]
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    worker = services["worker"]
    assert "challenge-pool" in worker["command"]
    merged = worker["environment"]  # YAML merge keys (<<) already applied
    assert merged["PREFECT_API_URL"] == "http://prefect-server:4200/api" and "AWS_ACCESS_KEY_ID" in merged
    assert "prefect.yaml" in services["deployer"]["command"]


def test_serve_warns_without_a_prefect_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import challenge.flows.deployments as deployments
    from challenge.app.cli import main
    from challenge.core.config import write_config

    served: list[tuple] = []
    monkeypatch.setattr(deployments, "serve_all", lambda *args: served.append(args))  # not the server here
    config = ChallengeConfig.model_validate({"name": "x-challenge", "title": "x", "storage": {
        n: str(tmp_path / n) for n in ("intake", "public", "private", "submissions")}})
    path = write_config(config, tmp_path / "challenge.yaml")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["--config", str(path), "serve", "--score-every", "2"]) == 0
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err
    assert served == [(config, str(path.resolve()), 2.0, None, None)]
