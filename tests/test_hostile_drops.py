"""Hostile contributors' drops (issue 22): a task id taken over, a Parquet dictionary bomb, a CSV of 50,000
undeclared columns, a drop whose checks never end, non-finite numbers, and files that are not what their name
says. Each fails alone with a report naming the rule or the limit and the fix; none stops the other drops.

Each test that touches storage runs on both backends (local folder, S3 over HTTP)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, put_drop, saved
from drops import (
    classification_drop,
    classification_frame,
    classification_spec,
    hanging_frame,
    hanging_spec,
    matching_drop,
    matching_tables,
    parquet_bomb,
    wide_csv,
    write_drop,
)
from test_gate import failed_checks, gate, storages

from challenge.core.run_context import RunContext
from challenge.core import catalog
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ConfigError, DropsFailed
from challenge.core.storage import ObjectInfo
from challenge.tasks.intake.drops import Drop, DropOutcome, discover_drops, run_time_label, task_id_clashes
from challenge.tasks.intake.gate import gate_drop
from challenge.tasks.intake.gate_reports import GateReport
from challenge.tasks.intake.staged import list_staged


def gate_all(config: ChallengeConfig) -> dict[str, tuple[DropOutcome, GateReport | None]]:
    """Gate every drop of intake one after the other, as one collect run sees them."""
    intake, _ = storages(config)
    drops, _ = discover_drops(intake)
    clashes, run_time = task_id_clashes(drops), run_time_label()
    return {d.name: gate_drop(d, RunContext(config), run_time, clashes.get(d.folder)) for d in drops}


def with_settings(config: ChallengeConfig, **settings: object) -> ChallengeConfig:
    return ChallengeConfig.model_validate({**config.model_dump(mode="json"), **settings})


def stored_report(config: ChallengeConfig, outcome: DropOutcome) -> dict:
    _, private = storages(config)
    return json.loads(private.read_bytes(outcome.report.removeprefix(private.uri + "/")))


def latest_note(config: ChallengeConfig, task_id: str, contributor: str) -> dict:
    _, private = storages(config)
    return json.loads(private.read_bytes(catalog.latest_report_key(task_id, contributor)))


def hints(report: GateReport | None, check: str) -> str:
    return json.dumps([c.as_dict() for c in failed_checks(report).get(check, [])])


# --- item 2: who owns a task id ----------------------------------------------------------------------------


def test_a_second_contributor_cannot_take_over_a_staged_task_id(config: ChallengeConfig, tmp_path: Path) -> None:
    """team-y drops team-x's task id: before, both drops failed every collect (team-x could no longer update
    its task) and wrote the same report folder. Now team-y's drop fails alone, naming the owner and the fix;
    team-x's update is gated and staged; each has its own reports, and latest-team-y.json points at team-y's."""
    owner_folder = classification_drop(tmp_path / "x" / "shop-items")
    assert gate(config, owner_folder, "team-x")[0].verdict == "pass"
    put_drop(config, classification_drop(tmp_path / "y" / "shop-items", classification_frame(seed=9)), "team-y")
    classification_drop(owner_folder, classification_frame(seed=3))  # the owner corrects its data
    put_drop(config, owner_folder, "team-x")

    outcomes = gate_all(config)
    (owner, owner_report), (squatter, squatter_report) = outcomes["team-x/shop-items"], outcomes["team-y/shop-items"]
    assert owner.verdict == "pass" and owner.staged, owner.failures
    _, private = storages(config)
    assert list_staged(private)["shop-items"].contributor == "team-x"
    assert list_staged(private)["shop-items"].prefix in owner.staged
    assert squatter.verdict == "fail" and squatter.staged is None
    assert [c.check for c in squatter_report.failures] == ["task_id_owner"]
    message = squatter_report.failures[0].hint
    assert "task id 'shop-items' belongs to contributor 'team-x'" in message and "staged it first" in message
    assert "choose another task id" in message and "ask the organizers" in message and "owners:" in message
    # the owner hears of the other drop, without failing for it
    assert [(c.check, c.severity) for c in owner_report.warnings if c.check == "task_id_owner"] == [("task_id_owner", "warning")]

    # no two drops write the same report folder; each latest note points at its contributor's own report
    assert owner.report.rsplit("/", 2)[0] != squatter.report.rsplit("/", 2)[0]
    for contributor, outcome, seed in (("team-x", owner, 3), ("team-y", squatter, 9)):
        note = latest_note(config, "shop-items", contributor)
        assert note["outcome"]["report"] == outcome.report
        stored = stored_report(config, outcome)
        assert stored["contributor"] == contributor
        assert stored["tables"]["data"]["rows"] == len(classification_frame(seed=seed))

    # the squatter's unchanged drop is not gated again while the owner stays the same
    again = gate_all(config)
    assert again["team-y/shop-items"][0].status == "unchanged" and again["team-y/shop-items"][0].verdict == "fail"
    assert again["team-x/shop-items"][0].status == "unchanged"


def test_two_new_drops_of_one_task_id_the_earlier_owns_it(config: ChallengeConfig, tmp_path: Path) -> None:
    """Before anything is staged, team-y drops shop-items, then team-x: team-y's drop came first (by its files'
    time, though team-x sorts first by name): it is gated and staged; team-x's fails alone, saying why."""
    put_drop(config, classification_drop(tmp_path / "y" / "shop-items"), "team-y")
    time.sleep(1.1)  # S3 times its objects to the second
    put_drop(config, classification_drop(tmp_path / "x" / "shop-items", classification_frame(seed=4)), "team-x")
    outcomes = gate_all(config)
    assert outcomes["team-y/shop-items"][0].verdict == "pass"
    later, report = outcomes["team-x/shop-items"]
    assert later.verdict == "fail" and [c.check for c in report.failures] == ["task_id_owner"]
    message = report.failures[0].hint
    assert "claimed by contributor 'team-y', whose drop came first" in message and "choose another task id" in message
    _, private = storages(config)
    assert list_staged(private)["shop-items"].contributor == "team-y"
    again = gate_all(config)  # once staged, team-y owns it for good
    assert "belongs to contributor 'team-y'" in " ".join(again["team-x/shop-items"][0].failures)


def test_drops_of_one_task_id_are_ordered_by_time_then_name() -> None:
    from datetime import datetime, timezone

    def drop(contributor: str, *minutes: int, folder: str = "shop-items") -> Drop:
        times = [datetime(2026, 1, 1, 12, m, tzinfo=timezone.utc) for m in minutes]
        return Drop(contributor, folder, tuple(ObjectInfo(f"{contributor}/{folder}/f{i}", 1, "v", t)
                                               for i, t in enumerate(times)))

    clashes = task_id_clashes([drop("team-b", 5, 9), drop("team-c", 5), drop("team-a", 7, 6),
                               drop("solo", 1, folder="other-task")])
    assert list(clashes) == ["shop-items"]  # a task id dropped once is no clash
    assert [c.contributor for c in clashes["shop-items"]] == ["team-b", "team-c", "team-a"]  # its oldest file, then name
    assert clashes["shop-items"][0].dropped_at == "2026-01-01T12:05:00+00:00"


def test_the_organizers_assign_a_task_id_in_challenge_yaml(config: ChallengeConfig, tmp_path: Path) -> None:
    """owners: {shop-items: team-y} gives team-y the task id team-x staged first: team-y's drop is staged,
    team-x's fails naming the assignment."""
    assert gate(config, classification_drop(tmp_path / "x" / "shop-items"), "team-x")[0].verdict == "pass"
    put_drop(config, classification_drop(tmp_path / "y" / "shop-items", classification_frame(seed=2)), "team-y")
    assigned = with_settings(config, owners={"shop-items": "team-y"})
    outcomes = gate_all(assigned)
    assert outcomes["team-y/shop-items"][0].verdict == "pass"
    refused = outcomes["team-x/shop-items"][0]
    assert refused.verdict == "fail" and "assigned to contributor 'team-y' by the organizers" in " ".join(refused.failures)
    _, private = storages(config)
    assert list_staged(private)["shop-items"].contributor == "team-y"


@pytest.mark.parametrize(("owners", "needle"), [
    ("{Shop Items: team-x}", "owners: Value error, 'Shop Items' is not a task id"),
    ("{shop-items: 'team/x'}", "owners: Value error, shop-items: 'team/x' is not a contributor folder name"),
    ("[team-x]", "owners: Input should be a valid dictionary"),
])
def test_owners_in_challenge_yaml_are_validated(tmp_path: Path, owners: str, needle: str) -> None:
    from challenge.core.config import load_config

    path = tmp_path / "challenge.yaml"
    path.write_text("name: c1\ntitle: t\nstorage: {intake: a, public: b, private: c, submissions: d}\n"
                    f"owners: {owners}\n")
    with pytest.raises(ConfigError, match="challenge.yaml: " + needle.replace("(", r"\(").replace("[", r"\[")):
        load_config(path)


def test_intake_limits_in_challenge_yaml_are_validated(tmp_path: Path) -> None:
    from challenge.core.config import load_config

    path = tmp_path / "challenge.yaml"
    base = "name: c1\ntitle: t\nstorage: {intake: a, public: b, private: c, submissions: d}\n"
    path.write_text(base + "intake: {max_seconds_per_drop: 0}\n")
    with pytest.raises(ConfigError, match="intake.max_seconds_per_drop: Input should be greater than 0"):
        load_config(path)
    path.write_text(base + "intake: {max_colums: 10}\n")
    with pytest.raises(ConfigError, match="intake.max_colums: unknown key"):
        load_config(path)
    path.write_text(base)
    intake = load_config(path).intake
    assert (intake.max_seconds_per_drop, intake.max_columns, intake.max_value_kb, intake.max_table_mb) == (1800, 1000, 1024, 4096)


# --- item 3: bounded work per drop -------------------------------------------------------------------------


def test_a_parquet_dictionary_bomb_fails_on_its_dictionary(config: ChallengeConfig, tmp_path: Path) -> None:
    """A 3.6 KB Parquet file whose Title holds one 10 MB value under 334 rows (3.3 GB decoded): it ended as
    "internal error while gating" with no report. Now it fails data_file_within_limits, naming the column,
    the value's size, the limit and the fix; the other checks of the drop still run on what was read."""
    folder = tmp_path / "shop-items"
    folder.mkdir()
    parquet_bomb(folder / "items.parquet")
    (folder / "task.yaml").write_text(json.dumps(classification_spec(data="items.parquet")))
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail" and outcome.report
    (limit,) = failed_checks(report)["data_file_within_limits"]
    assert limit.table == "data" and limit.column == "Title"
    for needle in ("items.parquet", "'Title'", "10.0 MB", "at most 1 MB", "intake.max_value_kb", "shorten"):
        assert needle in limit.hint, limit.hint
    assert stored_report(config, outcome)["verdict"] == "fail"


def test_the_parquet_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """The refusal comes from the dictionary, before any row is decoded: the reading process stays far
    below the 3.3 GB the plain read allocated."""
    path = parquet_bomb(tmp_path / "items.parquet")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from challenge.core.errors import DataReadError\n"
        "from challenge.tasks.intake.read_tables import ReadLimits, read_data_file\n"
        "try:\n"
        f"    read_data_file(Path({str(path)!r}), 'items.parquet', ['Item ID', 'Title'], None, ReadLimits())\n"
        "except DataReadError as exc:\n"
        "    print(exc)\n"
        # VmHWM: this process's own peak (ru_maxrss would include the parent's size, folded in at exec)
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    message, peak_kb = done.stdout.strip().splitlines()
    assert "'Title' holds a value of 10.0 MB" in message, done.stderr
    assert int(peak_kb) < 600_000, f"peak RSS {int(peak_kb) // 1024} MB"


def test_a_csv_with_50000_undeclared_columns_fails_at_its_header(config: ChallengeConfig, tmp_path: Path) -> None:
    """A 12 MB CSV with 50,000 columns task.yaml does not declare hung collect (240 s, 1.1 GB and on); now
    its header is read alone and refused, naming the limit and the fix."""
    folder = tmp_path / "shop-items"
    folder.mkdir()
    wide_csv(folder / "items.csv")
    (folder / "task.yaml").write_text(json.dumps(classification_spec()))
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail"
    (limit,) = failed_checks(report)["data_file_within_limits"]
    for needle in ("items.csv", "50,005 columns", "at most 1,000", "intake.max_columns", "declare the columns you use"):
        assert needle in limit.hint, limit.hint


def test_only_the_declared_columns_are_decoded_and_the_others_are_named(config: ChallengeConfig, tmp_path: Path) -> None:
    """Within the limit, undeclared columns are left unread (a Parquet file's and a CSV's alike) and listed in a
    warning; the drop passes with its declared columns."""
    frame = classification_frame()
    for i in range(30):
        frame[f"extra {i}"] = "x" * 100
    for name in ("items.csv", "items.parquet"):
        folder = write_drop(tmp_path / name / "shop-items", classification_spec(data=name), {name: frame})
        outcome, report = gate(config, folder, force=True)
        assert outcome.verdict == "pass", outcome.failures
        (undeclared,) = [c for c in report.warnings if c.check == "undeclared_columns"]
        assert undeclared.count == 30 and undeclared.column.startswith("extra 0, extra 1") and "and 20 more" in undeclared.column
        assert report.tables["data"]["columns"] == ["id", "title", "price", "colour", "label"]


def test_a_jsonl_with_50000_keys_is_refused_before_it_is_parsed(config: ChallengeConfig, tmp_path: Path) -> None:
    """A 7 MB JSON Lines file whose first line has 50,000 keys decoded to 18 GB (every key a column over every
    line); now its keys are counted first."""
    folder = classification_drop(tmp_path / "shop-items", data="items.jsonl")
    lines = (folder / "items.jsonl").read_text().splitlines()
    first = json.loads(lines[0]) | {f"k{i}": "v" for i in range(50_000)}
    (folder / "items.jsonl").write_text("\n".join([json.dumps(first)] + lines[1:] * 5000) + "\n")
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail"
    hint = hints(report, "data_file_within_limits")
    assert "items.jsonl" in hint and "50,005 distinct keys" in hint and "at most 1,000" in hint, hint


def test_a_value_over_the_limit_names_its_column_and_row(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[3, "Title"] = "y" * (2 << 20)  # 2 MB: within a row's 4 MB, over a value's 1 MB
    _, report = gate(config, classification_drop(tmp_path / "shop-items", frame))
    hint = hints(report, "data_file_within_limits")
    for needle in ("items.csv", "'Title'", "2.0 MB", "row 4", "item-003", "at most 1 MB", "intake.max_value_kb"):
        assert needle in hint, hint


def test_the_limits_follow_challenge_yaml(config: ChallengeConfig, tmp_path: Path) -> None:
    """An organizer who expects wider tables raises the limits; a lower one refuses a smaller table."""
    folder = classification_drop(tmp_path / "shop-items")
    narrow = with_settings(config, intake={"max_columns": 3})
    _, report = gate(narrow, folder)
    assert "the header has 5 columns; at most 3" in hints(report, "data_file_within_limits")
    small = with_settings(config, intake={"max_table_mb": 0.0001})
    _, report = gate(small, folder, force=True)
    assert "more than intake.max_table_mb (0.0001 MB)" in hints(report, "data_file_within_limits")
    assert gate(config, folder, force=True)[0].verdict == "pass"


@pytest.mark.parametrize(("case", "needle"), [
    ("utf16-bom", "items.csv: the file is UTF-16 encoded; re-save it as UTF-8"),
    ("utf16-no-bom", "items.csv: the file is UTF-16 encoded; re-save it as UTF-8"),
    ("gzip", "items.csv: the file is gzip-compressed, not a CSV; decompress it and drop the .csv itself"),
    ("parquet", "items.csv: the file is a Parquet file, not a CSV; name it items.parquet (and data: in task.yaml)"),
    ("cell-10mb", ("items.csv: line 5 is 10.0 MB long; a row may be at most 4 MB and a value at most 1 MB "
                   "(intake.max_value_kb in challenge.yaml): shorten the long values or leave them out")),
    ("field-30mb", ("items.csv: the record starting at line 5 is longer than 4 MB (a quoted value with line breaks, "
                    "or a quote that is never closed); a value may be at most 1 MB (intake.max_value_kb in challenge.yaml)")),
    ("first-line-20mb", "items.csv: the first line is longer than 4 MB; it should be the header (the column names, comma-separated"),
])
def test_a_file_that_is_not_what_its_name_says_gets_one_line_naming_it(config: ChallengeConfig, tmp_path: Path,
                                                                     case: str, needle: str) -> None:
    frame = classification_frame()
    folder = classification_drop(tmp_path / "shop-items", frame)
    text = frame.to_csv(index=False)
    lines = text.splitlines()
    path = folder / "items.csv"
    if case == "utf16-bom":
        path.write_bytes(text.encode("utf-16"))
    elif case == "utf16-no-bom":
        path.write_bytes(text.encode("utf-16-le"))
    elif case == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    elif case == "parquet":
        frame.to_parquet(path, index=False)
    elif case == "cell-10mb":
        lines[4] = lines[4].replace(",", "," + "z" * (10 << 20), 1)
        path.write_text("\n".join(lines) + "\n")
    elif case == "field-30mb":
        lines[4] = lines[4].replace(",", ',"' + "z\n" * (15 << 20) + '"', 1)
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text(lines[0] + "," + "t" * (20 << 20) + "\n" + "\n".join(lines[1:]) + "\n")
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail"
    failures = failed_checks(report)
    (check,) = failures.get("data_file_readable", []) + failures.get("data_file_within_limits", [])
    assert check.hint.startswith("team-x/shop-items/" + needle), check.hint
    assert "\n" not in check.hint and len(check.hint) < 400


def test_a_csv_with_cr_only_line_ends_is_read_row_by_row(config: ChallengeConfig, tmp_path: Path) -> None:
    """Old Mac line ends (CR alone): read as rows, as pyarrow does, header check included."""
    frame = classification_frame()
    folder = classification_drop(tmp_path / "shop-items", frame)
    (folder / "items.csv").write_text(frame.to_csv(index=False).replace("\n", "\r"), newline="")
    outcome, report = gate(config, folder)
    assert outcome.verdict == "pass", outcome.failures
    assert report.tables["data"]["rows"] == len(frame)


# The budget kills the gate's process whatever the storage (the child opens its own): one backend each, S3 here
# (the child reaches the bucket itself), local folders for the new-interpreter case below; each burns a core
# for its whole budget.
@pytest.mark.parametrize("backend", ["s3"])
def test_a_drop_whose_checks_never_end_fails_at_its_time_budget(backend: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    """task.yaml's own expectation backtracks for hours (a JSON-schema pattern: Python's re engine, which holds
    its thread and which nothing in the process can interrupt). Its gate runs in a process of its own: after
    intake.max_seconds_per_drop it is stopped, its report says so (and which checks had run), and the drop
    beside it is staged."""
    request.getfixturevalue("prefect_harness")
    from challenge.flows.collect_datasets import collect_datasets

    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = make_config(backend, tmp_path / "challenge", endpoint, intake={"max_seconds_per_drop": 15})
    put_drop(config, write_drop(tmp_path / "shop-items", hanging_spec(), {"items.csv": hanging_frame()}), "team-x")
    put_drop(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    with pytest.raises(DropsFailed) as failed:
        collect_datasets(config_path=saved(config))
    outcomes = {o.drop: o for o in failed.value.result.outcomes}
    assert outcomes["penguin-lab/penguins"].verdict == "pass" and outcomes["penguin-lab/penguins"].staged
    hung = outcomes["team-x/shop-items"]
    assert hung.verdict == "fail" and hung.status == "gated" and hung.report
    assert any("time_budget" in line and "15 s" in line and "intake.max_seconds_per_drop" in line for line in hung.failures)
    stored = stored_report(config, hung)
    assert {c["check"] for c in stored["failed_checks"]} == {"time_budget"}
    (budget,) = stored["failed_checks"]
    assert "while running the checks" in budget["hint"]
    assert stored["checks_passed"] >= 3  # task.yaml, the file and its columns were checked before the stop
    _, private = storages(config)
    assert "shop-items" not in list_staged(private)
    # an unchanged drop that ran out of time is not run again under the same budget
    with pytest.raises(DropsFailed) as again:
        collect_datasets(config_path=saved(config))
    assert {o.drop: o.status for o in again.value.result.outcomes} == {"team-x/shop-items": "unchanged",
                                                                        "penguin-lab/penguins": "unchanged"}


@pytest.mark.parametrize("backend", ["local"])
def test_in_a_daemonic_process_the_gate_runs_in_a_new_interpreter_bounded_the_same(
        config: ChallengeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask worker is a daemonic process, which may not start multiprocessing children: there each drop's gate
    runs in a new interpreter, stopped at the budget the same way, and a good drop passes as in-process."""
    from challenge.tasks.intake import gate_process

    monkeypatch.setattr(gate_process, "_daemonic", lambda: True)
    started = []
    monkeypatch.setattr(gate_process, "_start_interpreter",
                        lambda payload, start=gate_process._start_interpreter: started.append(1) or start(payload))
    bounded = with_settings(config, intake={"max_seconds_per_drop": 20})
    put_drop(bounded, write_drop(tmp_path / "shop-items", hanging_spec(), {"items.csv": hanging_frame()}), "team-x")
    put_drop(bounded, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    drops, _ = discover_drops(storages(bounded)[0])
    outcomes = {d.name: gate_process.gate_drop_within_budget(d, RunContext(bounded), run_time_label())[0] for d in drops}
    assert started == [1, 1]
    assert outcomes["penguin-lab/penguins"].verdict == "pass" and outcomes["penguin-lab/penguins"].staged
    assert any("time_budget" in line and "20 s" in line for line in outcomes["team-x/shop-items"].failures)


def test_a_collect_with_the_hostile_drops_finishes_and_stages_the_good_ones(backend: str, tmp_path: Path,
                                                                           request: pytest.FixtureRequest) -> None:
    """The issue's acceptance: the 50,000-column CSV, the Parquet bomb and two good drops in one collect, with a
    small budget: it finishes, the good drops are staged, each hostile one has its report naming its limit."""
    request.getfixturevalue("prefect_harness")
    from challenge.flows.collect_datasets import collect_datasets

    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = make_config(backend, tmp_path / "challenge", endpoint, intake={"max_seconds_per_drop": 60})
    wide = tmp_path / "wide" / "wide-items"
    wide.mkdir(parents=True)
    wide_csv(wide / "items.csv")
    (wide / "task.yaml").write_text(json.dumps(classification_spec(task_id="wide-items")))
    bomb = tmp_path / "bomb" / "bomb-items"
    bomb.mkdir(parents=True)
    parquet_bomb(bomb / "items.parquet")
    (bomb / "task.yaml").write_text(json.dumps(classification_spec(task_id="bomb-items", data="items.parquet")))
    put_drop(config, wide, "team-w")
    put_drop(config, bomb, "team-b")
    put_drop(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    records, pairs = matching_tables()
    put_drop(config, matching_drop(tmp_path / "companies", records, pairs), "team-m")
    with pytest.raises(DropsFailed) as failed:
        collect_datasets(config_path=saved(config))
    outcomes = {o.drop: o for o in failed.value.result.outcomes}
    assert {d: o.verdict for d, o in outcomes.items()} == {
        "team-w/wide-items": "fail", "team-b/bomb-items": "fail", "penguin-lab/penguins": "pass", "team-m/companies": "pass"}
    assert any("50,005 columns" in line for line in outcomes["team-w/wide-items"].failures)
    assert any("10.0 MB" in line for line in outcomes["team-b/bomb-items"].failures)
    _, private = storages(config)
    assert set(list_staged(private)) == {"penguins", "companies"}
    for drop in ("team-w/wide-items", "team-b/bomb-items"):
        assert stored_report(config, outcomes[drop])["verdict"] == "fail"


# --- item 4: numbers that are not finite -------------------------------------------------------------------


def test_inf_and_out_of_range_numbers_fail_unless_the_column_allows_them(config: ChallengeConfig, tmp_path: Path) -> None:
    """inf, -inf and 1e400 (read as inf) passed the gate and were published (18 lines of inf in a train.csv).
    Now numeric_values_finite fails, naming the contributor's column, the count, example rows and the fix. A
    CSV's NaN text is a missing value, as the reader reads it (like an empty cell)."""
    frame = classification_frame().astype({"Price": object})
    frame.loc[2, "Price"], frame.loc[5, "Price"], frame.loc[7, "Price"] = "inf", "-inf", "1e400"
    frame.loc[9, "Price"] = "NaN"
    outcome, report = gate(config, classification_drop(tmp_path / "shop-items", frame))
    assert outcome.verdict == "fail"
    (finite,) = failed_checks(report)["numeric_values_finite"]
    assert (finite.table, finite.column, finite.count) == ("data", "Price", 3)
    assert finite.examples[:3] == [{"Item ID": "item-002", "Price": "inf"}, {"Item ID": "item-005", "Price": "-inf"},
                                   {"Item ID": "item-007", "Price": "inf"}]
    assert "allow_nonfinite: true" in finite.hint and "leave the cell empty" in finite.hint
    assert [c.check for c in report.failures] == ["numeric_values_finite"]

    spec = classification_spec(columns={"Title": "text", "Price": {"modality": "numeric", "allow_nonfinite": True},
                                        "Colour": "categorical"})
    allowed, report = gate(config, write_drop(tmp_path / "allowed" / "shop-items", spec, {"items.csv": frame}))
    assert allowed.verdict == "pass", allowed.failures
    _, private = storages(config)
    staged = list_staged(private)["shop-items"]
    private.download_file(f"{staged.prefix}/data.parquet", tmp_path / "data.parquet")
    prices = pq.read_table(tmp_path / "data.parquet")["price"].to_pylist()
    assert prices[2] == float("inf") and prices[5] == float("-inf") and prices[7] == float("inf") and prices[9] is None


def test_nan_floats_in_parquet_are_not_finite_and_a_task_may_allow_them(config: ChallengeConfig, tmp_path: Path) -> None:
    """A NaN stored as a float (Parquet) is a value, not a missing one: it fails like inf; `allow_nonfinite: true`
    for the whole task lets it through. Missing values (nulls) pass as before."""
    frame = classification_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    prices = table["Price"].to_pylist()
    prices[1], prices[4] = float("nan"), None
    table = table.set_column(table.column_names.index("Price"), "Price", pa.array(prices, pa.float64(), from_pandas=False))
    folder = classification_drop(tmp_path / "shop-items", data="items.parquet")
    pq.write_table(table, folder / "items.parquet")
    _, report = gate(config, folder)
    (finite,) = failed_checks(report)["numeric_values_finite"]
    assert finite.count == 1 and finite.examples == [{"Item ID": "item-001", "Price": "nan"}]
    whole_task = write_drop(tmp_path / "allowed" / "shop-items", classification_spec(data="items.parquet", allow_nonfinite=True), {})
    pq.write_table(table, whole_task / "items.parquet")
    assert gate(config, whole_task)[0].verdict == "pass"


def test_allow_nonfinite_is_only_for_numeric_columns(config: ChallengeConfig, tmp_path: Path) -> None:
    spec = classification_spec(columns={"Title": {"modality": "text", "allow_nonfinite": True}, "Price": "numeric"})
    folder = write_drop(tmp_path / "shop-items", spec, {"items.csv": classification_frame()})
    _, report = gate(config, folder)
    assert "columns.Title: Value error, allow_nonfinite is for numeric columns" in hints(report, "task_yaml_valid")


def test_a_matching_drop_checks_its_records_numbers_too(config: ChallengeConfig, tmp_path: Path) -> None:
    records, pairs = matching_tables()
    records["size"] = 1.0
    records.loc[3, "size"] = float("inf")
    folder = matching_drop(tmp_path / "companies", records, pairs,
                           columns={"name": "text", "city": "categorical", "size": "numeric"})
    _, report = gate(config, folder)
    (finite,) = failed_checks(report)["numeric_values_finite"]
    assert (finite.table, finite.column, finite.examples) == ("records", "size", [{"rid": "e1-b", "size": "inf"}])


def test_a_matching_drop_and_its_copy_under_another_contributor(config: ChallengeConfig) -> None:
    """The example matching drop, then a copy of it under another contributor: the earlier one is gated and
    staged, the copy fails alone; each has its own report."""
    put_drop(config, EXAMPLES / "linkage-team" / "febrl-people", "linkage-team")
    time.sleep(1.1)
    put_drop(config, EXAMPLES / "linkage-team" / "febrl-people", "copycat")
    outcomes = gate_all(config)
    assert outcomes["linkage-team/febrl-people"][0].verdict == "pass"
    copy, report = outcomes["copycat/febrl-people"]
    assert copy.verdict == "fail" and [c.check for c in report.failures] == ["task_id_owner"]
    assert len({o.report.rsplit("/", 2)[0] for o, _ in outcomes.values()}) == 2


def test_old_report_folders_stay_readable(config: ChallengeConfig, tmp_path: Path) -> None:
    """A latest note written by the previous layout (reports/<task>/<run>/) still serves an unchanged drop."""
    folder = classification_drop(tmp_path / "shop-items")
    first, _ = gate(config, folder)
    _, private = storages(config)
    note = latest_note(config, "shop-items", "team-x")
    old_prefix = f"{catalog.reports_prefix('shop-items')}/2026-01-01T00-00-00.000Z"
    old_report = catalog.report_key(old_prefix)
    private.write_bytes(old_report, private.read_bytes(first.report.removeprefix(private.uri + "/")))
    note["outcome"]["report"] = private.uri_for(old_report)
    note.pop("owner", None)  # an older note does not say who owned the task
    private.write_bytes(catalog.latest_report_key("shop-items", "team-x"), json.dumps(note).encode())
    again, report = gate(config, folder)
    assert again.status == "unchanged" and report is None and again.report == private.uri_for(old_report)
    assert json.loads(private.read_bytes(old_report))["verdict"] == "pass"

