"""The collect_datasets flow on Prefect's real engine, and `challenge collect`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, put_drop, saved
from drops import classification_drop, classification_frame
from prefect.client.orchestration import get_client

from challenge.app.cli import main
from challenge.core.config import ChallengeConfig
from challenge.core.errors import DropsFailed
from challenge.flows.collect_datasets import collect_datasets

pytestmark = pytest.mark.usefixtures("prefect_harness")


def load_examples(config: ChallengeConfig) -> None:
    for contributor in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        for task in contributor.iterdir():
            put_drop(config, task, contributor.name)


def write_config(config: ChallengeConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path


def test_one_bad_drop_never_stops_the_others_and_reruns_do_no_work(config: ChallengeConfig, tmp_path: Path) -> None:
    from prefect.artifacts import Artifact

    load_examples(config)
    frame = classification_frame()
    frame.loc[0, "Item ID"] = None
    put_drop(config, classification_drop(tmp_path / "shop-items", frame), "team-x")

    state = collect_datasets(config_path=saved(config), return_state=True)
    with get_client(sync_client=True) as client:  # what the UI, automations and notifications see
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state.is_failed() and run.state.name == "DropsFailed"
    assert run.state.message == ("1 of 4 drop(s) failed the quality gate: team-x/shop-items; "
                                 "each report says what to fix")
    with pytest.raises(DropsFailed) as failed:  # calling the flow raises, with the summary
        state.result()
    summary = failed.value.result
    verdicts = {o.drop: o.verdict for o in summary.outcomes}
    assert verdicts == {
        "linkage-team/febrl-people": "pass", "penguin-lab/penguins": "pass",
        "vision-team/digits": "pass", "team-x/shop-items": "fail",
    }
    assert summary.counts() == {"drops": 4, "passed": 3, "failed": 1, "unchanged": 0}
    passing = collect_datasets(config_path=saved(config), tasks=["penguins"], return_state=True)
    assert passing.is_completed() and passing.name == "Completed"
    artifact = Artifact.get("gate-penguins")
    assert artifact is not None and "pass" in artifact.data and "penguins" in artifact.data
    assert "expect_column_values_to_not_be_null" in Artifact.get("gate-shop-items").data

    with pytest.raises(DropsFailed) as still_failed:
        collect_datasets(config_path=saved(config))
    again = still_failed.value.result
    assert [o.status for o in again.outcomes] == ["unchanged"] * 4
    assert {o.drop: o.verdict for o in again.outcomes} == verdicts
    assert {o.drop: o.report for o in again.outcomes} == {o.drop: o.report for o in summary.outcomes}


def test_cli_collect_exit_code_filter_and_reasons(config: ChallengeConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_drop(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    frame = classification_frame()
    frame.loc[0, "kind"] = "hamster"
    put_drop(config, classification_drop(tmp_path / "shop-items", frame), "team-x")
    config_file = write_config(config, tmp_path / "challenge.yaml")

    assert main(["--config", str(config_file), "collect", "--task", "penguins"]) == 0
    out = capsys.readouterr().out
    assert "PASS  penguin-lab/penguins" in out and "shop-items" not in out and "report.json" in out

    assert main(["--config", str(config_file), "collect"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  team-x/shop-items" in out and "rows_per_class" in out and "fewer than 5 rows" in out
    assert "PASS  penguin-lab/penguins  (unchanged" in out


def test_cli_reports_a_bad_config_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "challenge.yaml"
    bad.write_text("name: x1\ntitle: t\nstorage: {intake: a, public: b, private: c, submissions: d}\nwhatever: 1\n")
    assert main(["--config", str(bad), "collect"]) == 2
    assert f"{bad}: whatever: unknown key" in capsys.readouterr().err


def test_a_run_that_ends_failed_on_purpose_logs_no_traceback_and_others_still_do(caplog: pytest.LogCaptureFixture) -> None:
    """As `python -m prefect.engine` runs a deployment's flow run: its error logger is the run's logger. A
    Failed state returned through failed_run (DropsFailed, ScoringErrors) is no "unexpected exception";
    a flow that really breaks still logs its traceback."""
    import uuid

    from prefect import flow
    from prefect.flow_engine import run_flow
    from prefect.logging.loggers import flow_run_logger

    from challenge.core.errors import ScoringErrors
    from challenge.flows.run_states import failed_run

    @flow
    def ends_failed() -> object:
        return failed_run(ScoringErrors("1 submission(s) hit an internal error", None))

    @flow
    def breaks() -> None:
        raise ValueError("a real bug")

    run_log = flow_run_logger(flow_run_id=uuid.uuid4())
    with caplog.at_level("INFO", logger="prefect.flow_runs"):
        with pytest.raises(ScoringErrors):
            run_flow(ends_failed, error_logger=run_log)
        on_purpose = list(caplog.records)
        caplog.clear()
        with pytest.raises(ValueError):
            run_flow(breaks, error_logger=run_log)
        broken = list(caplog.records)
    assert any("Finished in state ScoringErrors" in r.getMessage() for r in on_purpose)
    assert not any(r.exc_info or "unexpected exception" in r.getMessage() for r in on_purpose)
    assert any("unexpected exception" in r.getMessage() and r.exc_info for r in broken)


def test_the_artifact_and_the_cli_tell_every_problem_of_a_drop_at_once(config: ChallengeConfig, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A drop with a missing declared column, a repeated id, a class of one row and an out-of-range value:
    the Prefect artifact and `challenge collect` name all four, with the contributor's column names."""
    from prefect.artifacts import Artifact
    from test_gate import broken_penguins

    put_drop(config, broken_penguins(tmp_path / "penguins"), "penguin-lab")
    assert main(["--config", str(write_config(config, tmp_path / "challenge.yaml")), "collect"]) == 1
    out = capsys.readouterr().out
    expected = ["data.sex: declared_columns_present", "data.penguin_id: expect_column_values_to_be_unique",
                "data.species: rows_per_class", "data.body_mass_g: expect_column_values_to_be_between"]
    assert all(f"      - {line}" in out for line in expected), out
    artifact = Artifact.get("gate-penguins").data
    for column, check in (("sex", "declared_columns_present"), ("penguin_id", "expect_column_values_to_be_unique"),
                          ("species", "rows_per_class"), ("body_mass_g", "expect_column_values_to_be_between")):
        assert f"| `data` | `{column}` | `{check}` |" in artifact, artifact
    assert "| `data` | `id` |" not in artifact and "| `data` | `label` |" not in artifact
