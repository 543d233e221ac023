"""The quality gate on good drops and on every bad input the intake issue lists.

Each test runs on both backends (local folder, S3 over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, put_drop
from drops import classification_drop, classification_frame, image_drop, matching_drop, matching_tables
from test_config import BILLION_LAUGHS

from challenge.core.run_context import RunContext
from challenge.core.config import ChallengeConfig
from challenge.core.storage import open_location
from challenge.tasks.intake.drops import DropOutcome, discover_drops, run_time_label, task_id_clashes
from challenge.tasks.intake.gate import gate_drop
from challenge.tasks.intake.gate_reports import GateReport, render_markdown
from challenge.tasks.intake.staged import list_staged


def storages(config: ChallengeConfig):
    return open_location(config, "intake"), open_location(config, "private")


def gate(config: ChallengeConfig, folder: Path, contributor: str = "team-x", task_dir: str | None = None,
         force: bool = False) -> tuple[DropOutcome, GateReport | None]:
    put_drop(config, folder, contributor, task_dir)
    intake, _ = storages(config)
    drops, _ = discover_drops(intake)
    drop = next(d for d in drops if d.contributor == contributor and d.folder == (task_dir or folder.name))
    clashes = task_id_clashes(drops)
    return gate_drop(drop, RunContext(config), run_time_label(), clashes.get(drop.folder), force)


def failed_checks(report: GateReport | None) -> dict[str, list]:
    assert report is not None
    out: dict[str, list] = {}
    for c in report.failures:
        out.setdefault(c.check, []).append(c)
    return out


def assert_fails(config: ChallengeConfig, folder: Path, check: str, *needles: str) -> GateReport:
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail", outcome
    assert outcome.staged is None
    failures = failed_checks(report)
    assert check in failures, f"expected {check}, got {list(failures)}"
    text = json.dumps([c.as_dict() for c in failures[check]])
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text}"
    # the machine-readable report is stored with the failure
    _, private = storages(config)
    stored = json.loads(private.read_bytes(outcome.report.split(private.uri + "/")[-1] if private.uri in outcome.report else outcome.report))
    assert stored["verdict"] == "fail" and any(c["check"] == check for c in stored["failed_checks"])
    assert all(c["hint"] for c in stored["failed_checks"])
    return report


# --- good drops -----------------------------------------------------------------------


@pytest.mark.parametrize("drop", ["penguin-lab/penguins", "vision-team/digits", "linkage-team/febrl-people"])
def test_example_drops_pass_and_are_staged_in_the_standard_schema(config: ChallengeConfig, drop: str) -> None:
    contributor, task = drop.split("/")
    outcome, report = gate(config, EXAMPLES / contributor / task, contributor)
    assert outcome.verdict == "pass", outcome.failures
    assert report is not None and report.data_docs and not report.failures
    _, private = storages(config)
    current = list_staged(private)[task]
    assert current.contributor == contributor
    meta = json.loads(private.read_bytes(f"{current.prefix}/staged.json"))
    assert meta["fingerprint"] == current.fingerprint
    assert private.exists(report.data_docs.split(private.uri + "/")[-1] if private.uri in report.data_docs else "")
    for name in meta["tables"]:
        local = Path(f"/tmp/{task}-{name}.parquet")
        private.download_file(f"{current.prefix}/{name}.parquet", local)
        schema = pq.read_schema(local)
        if name == "pairs":
            assert schema.names == ["left_id", "right_id", "label"] and schema.field("label").type == pa.int8()
        else:
            assert schema.names[0] == "id" and schema.field("id").type == pa.string()
        if name == "data":
            assert schema.names[-1] == "label" and schema.field("label").type == pa.string()
    if task == "penguins":
        assert schema.names == ["id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                "body_mass_g", "sex", "year", "label"]
        assert pa.types.is_dictionary(schema.field("island").type)
        assert schema.field("bill_length_mm").type == pa.float64() and schema.field("year").type == pa.int64()
    if task == "digits":
        assert private.exists(f"{current.prefix}/images/0000.png")


def test_snake_case_names_and_formats(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    for fmt in ("parquet", "jsonl"):
        folder = classification_drop(tmp_path / fmt / "shop-items", frame, data=f"items.{fmt}")
        outcome, report = gate(config, folder)
        assert outcome.verdict == "pass", outcome.failures
        assert report.tables["data"]["columns"] == ["id", "title", "price", "colour", "label"]
        assert report.tables["data"]["rows"] == len(frame)


def test_unchanged_drop_is_not_processed_again(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    first, report = gate(config, folder)
    assert first.status == "gated" and report is not None
    second, again = gate(config, folder)
    assert second.status == "unchanged" and again is None and second.report == first.report
    frame = classification_frame(seed=5)
    classification_drop(folder, frame)
    third, _ = gate(config, folder)
    assert third.status == "gated" and third.report != first.report


@pytest.mark.parametrize("make", [classification_drop, image_drop], ids=["table", "images"])
def test_a_drop_gated_again_under_changed_rules_keeps_its_staged_version(
        config: ChallengeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make) -> None:
    """The rules' digest covers the checks' source bytes, so a change to the check code (a new rule, or only
    a moved import) gates every drop again. When a drop passes again with the same standardized data, its
    staged version is kept: else the next release would rebuild the task and supersede every team's results
    for data that did not change."""
    import challenge.tasks.intake.gate as gate_module

    folder = make(tmp_path / ("shop-items" if make is classification_drop else "squares"))
    first, _ = gate(config, folder)
    _, private = storages(config)
    pointer_key = f"staged/{first.task_id}/current.json"
    before = json.loads(private.read_bytes(pointer_key))
    if make is image_drop:  # a version staged before its content digest was recorded: computed from its files
        meta_key = f"{before['prefix']}/staged.json"
        meta = json.loads(private.read_bytes(meta_key))
        del meta["content_sha256"]
        private.write_bytes(meta_key, json.dumps(meta).encode())
    rules = gate_module.rules_fingerprint()
    monkeypatch.setattr(gate_module, "rules_fingerprint", lambda: "changed " + rules)
    again, report = gate(config, folder)
    assert again.status == "gated" and report is not None and again.verdict == "pass"  # gated again
    assert json.loads(private.read_bytes(pointer_key)) == before and again.staged == first.staged
    assert gate(config, folder)[0].status == "unchanged"  # and not a third time
    if make is classification_drop:  # new data under the new rules: a new staged version
        classification_drop(folder, classification_frame(seed=5))
        changed, _ = gate(config, folder)
        assert json.loads(private.read_bytes(pointer_key))["version"] != before["version"]
        assert changed.staged != first.staged


# --- bad inputs -------------------------------------------------------------------------


def test_missing_task_yaml(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = tmp_path / "shop-items"
    folder.mkdir()
    classification_frame().to_csv(folder / "items.csv", index=False)
    assert_fails(config, folder, "task_yaml_present", "team-x/shop-items/task.yaml is missing")


def test_unknown_keys(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", labels="kind", split={"test_fraction": 0.2, "sed": 3})
    assert_fails(config, folder, "task_yaml_valid", "task.yaml: labels: unknown key", "split.sed: unknown key")


@pytest.mark.parametrize(("task_yaml", "needle"), [
    ("task_id: shop-items\n" + BILLION_LAUGHS, "aliases (*name) are not allowed"),
    ("task_id: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 40 levels deep"),
    ("task_id: shop-items\n#" + "x" * 300_000 + "\n", "larger than 256 KB"),
])
def test_hostile_task_yaml_fails_the_drop_clearly(config: ChallengeConfig, tmp_path: Path, task_yaml: str,
                                                  needle: str) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    (folder / "task.yaml").write_text(task_yaml)
    report = assert_fails(config, folder, "task_yaml_valid", needle)
    assert len(json.dumps(report.to_json().decode())) < 5000


def test_wrong_kind(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", kind="regression")
    assert_fails(config, folder, "task_yaml_valid", "kind", "classification", "matching")


def test_metric_of_the_other_kind(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", metric="f1")
    assert_fails(config, folder, "task_yaml_valid", "not a classification metric", "macro_f1")


@pytest.mark.parametrize("seed", ["abc", 1.5, True])
def test_seed_that_is_not_an_int(config: ChallengeConfig, tmp_path: Path, seed: object) -> None:
    folder = classification_drop(tmp_path / "shop-items", split={"test_fraction": 0.2, "seed": seed})
    assert_fails(config, folder, "task_yaml_valid", "split.seed", "seed must be an integer")


def test_missing_data_file(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    (folder / "items.csv").unlink()
    assert_fails(config, folder, "data_file_readable", "team-x/shop-items/items.csv: file not found")


def test_csv_with_bad_quoting_names_the_line(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    lines = (folder / "items.csv").read_text().splitlines()
    lines[4] = lines[4].replace(",", ',"', 1)  # an opening quote that never closes
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    assert_fails(config, folder, "data_file_readable", "items.csv", "line 5", "quot")


def test_csv_with_ragged_row_names_the_line(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    lines = (folder / "items.csv").read_text().splitlines()
    lines[7] += ",extra"
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    assert_fails(config, folder, "data_file_readable", "items.csv", "line 8 has 6 fields but the header has 5")


def test_csv_in_latin1_says_which_encoding(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[3, "Title"] = "crème brûlée"
    folder = classification_drop(tmp_path / "shop-items", frame)
    (folder / "items.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))
    assert_fails(config, folder, "data_file_readable", "not valid UTF-8", "line 5", "Latin-1", "Re-save the file as UTF-8")


def test_empty_table(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", classification_frame().iloc[:0])
    assert_fails(config, folder, "expect_table_row_count_to_be_between", "fewer than 10 rows")


def test_duplicate_and_null_ids(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[5, "Item ID"] = frame.loc[4, "Item ID"]
    frame.loc[9, "Item ID"] = None
    report = assert_fails(config, classification_drop(tmp_path / "shop-items", frame),
                          "expect_column_values_to_be_unique", "item-004", "Ids repeat")
    nulls = failed_checks(report)["expect_column_values_to_not_be_null"]
    assert any(c.column == "Item ID" and c.count == 1 for c in nulls)  # the contributor's name for the id


def test_missing_labels(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[[2, 3], "kind"] = None
    assert_fails(config, classification_drop(tmp_path / "shop-items", frame),
                 "expect_column_values_to_not_be_null", "item-002", "item-003", "no label")


def test_a_class_with_one_row(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[0, "kind"] = "hamster"
    assert_fails(config, classification_drop(tmp_path / "shop-items", frame),
                 "rows_per_class", "hamster", '"rows": 1')


def test_declared_column_absent(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", columns={"Title": "text", "Weight": "numeric"})
    assert_fails(config, folder, "declared_columns_present", "items.csv lacks declared column(s) Weight")


def test_numeric_column_with_text(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame().astype({"Price": object})
    frame.loc[6, "Price"] = "twelve"
    assert_fails(config, classification_drop(tmp_path / "shop-items", frame),
                 "numeric_columns_parse", "Price", "item-006", "twelve")


def test_columns_clashing_in_snake_case(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame["title"] = frame["Title"]
    folder = classification_drop(tmp_path / "shop-items", frame, columns={"Title": "text", "title": "text"})
    assert_fails(config, folder, "column_names_distinct", "both become 'title'")


def test_image_missing_or_not_decoding(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = image_drop(tmp_path / "squares")
    (folder / "imgs" / "dark-1.png").unlink()
    (folder / "imgs" / "light-2.png").write_bytes(b"not a png at all")
    report = assert_fails(config, folder, "images_decode", "dark-1", "file not found", "light-2", "does not decode")
    assert failed_checks(report)["images_decode"][0].count == 2


def test_a_400_megapixel_image_is_refused_from_its_header(config: ChallengeConfig, tmp_path: Path) -> None:
    import struct
    import zlib

    folder = image_drop(tmp_path / "squares")
    png = (folder / "imgs" / "dark-1.png").read_bytes()
    ihdr = struct.pack(">II", 20_000, 20_000) + png[24:29]  # the header claims 20000×20000 pixels
    chunk = b"IHDR" + ihdr
    (folder / "imgs" / "dark-1.png").write_bytes(png[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:])
    assert_fails(config, folder, "images_decode", "dark-1", "image too large", "at most 40 megapixels")


def test_image_drop_passes(config: ChallengeConfig, tmp_path: Path) -> None:
    outcome, _ = gate(config, image_drop(tmp_path / "squares"))
    assert outcome.verdict == "pass", outcome.failures


def test_image_problems_are_the_same_when_checked_in_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from challenge.expectations import custom_checks

    folder = image_drop(tmp_path / "squares") / "imgs"
    (folder / "dark-1.png").unlink()
    (folder / "light-2.png").write_bytes(b"not a png at all")
    (folder / "link.png").symlink_to(folder / "dark-0.png")
    paths = sorted(p.name for p in folder.iterdir()) + ["dark-1.png", "../escape.png", "sub/none.png"]
    in_process = custom_checks.image_problems(folder, paths)
    monkeypatch.setattr(custom_checks, "DECODE_POOL_MIN", 0)
    monkeypatch.setattr(custom_checks, "DECODE_CHUNK", 3)  # 5 chunks
    monkeypatch.setattr(custom_checks.os, "cpu_count", lambda: 2)  # a pool of 2 even on one core
    assert custom_checks.image_problems(folder, paths) == in_process == {
        "dark-1.png": "file not found", "sub/none.png": "file not found", "../escape.png": "path leaves the images folder",
        "link.png": "a symbolic link, not an image file",
        "light-2.png": "does not decode as an image (UnidentifiedImageError)",
    }


def test_pair_referring_to_missing_record(config: ChallengeConfig, tmp_path: Path) -> None:
    records, pairs = matching_tables()
    pairs.loc[len(pairs)] = ["e1-a", "ghost-7", 0]
    assert_fails(config, matching_drop(tmp_path / "companies", pairs=pairs),
                 "pairs_reference_records", "ghost-7", "right_id")


def test_same_pair_with_two_labels(config: ChallengeConfig, tmp_path: Path) -> None:
    records, pairs = matching_tables()
    pairs.loc[len(pairs)] = ["e2-b", "e2-a", 0]  # reversed order, opposite label
    assert_fails(config, matching_drop(tmp_path / "companies", pairs=pairs),
                 "pairs_conflicting_labels", "e2-a", "e2-b")


def test_pair_labels_not_binary(config: ChallengeConfig, tmp_path: Path) -> None:
    records, pairs = matching_tables()
    pairs = pairs.astype({"label": object})
    pairs.loc[1, "label"] = "maybe"
    assert_fails(config, matching_drop(tmp_path / "companies", pairs=pairs), "pair_labels_binary", "maybe")


def test_matching_drop_passes_with_renamed_pair_columns(config: ChallengeConfig, tmp_path: Path) -> None:
    records, pairs = matching_tables()
    pairs = pairs.rename(columns={"left_id": "a", "right_id": "b", "label": "same"})
    folder = matching_drop(tmp_path / "companies", pairs=pairs, pair_columns={"left": "a", "right": "b", "label": "same"})
    outcome, report = gate(config, folder)
    assert outcome.verdict == "pass", outcome.failures
    assert report.tables["pairs"]["columns"] == ["left_id", "right_id", "label"]


def test_label_leaking_column(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame["Code"] = frame["kind"].map({"cat": "C-1", "dog": "D-2", "bird": "B-3"})
    folder = classification_drop(tmp_path / "shop-items", frame,
                                 columns={"Title": "text", "Price": "numeric", "Code": "categorical"})
    assert_fails(config, folder, "label_leak", "code", "one-to-one", "C-1")


def test_task_expectation_from_task_yaml(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", expectations=[
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "Price", "min_value": 0, "max_value": 50},
         "hint": "prices are in euros below 50"},
    ])
    assert_fails(config, folder, "expect_column_values_to_be_between", "prices are in euros below 50", "item-")


def test_invalid_task_expectation_is_reported(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", expectations=[
        {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "Price"}},
    ])
    assert_fails(config, folder, "task_expectation_invalid", "expect_column_values_to_be_purple")


def test_task_id_must_match_folder(config: ChallengeConfig, tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items", task_id="other-name")
    assert_fails(config, folder, "task_id_matches_folder", "other-name", "shop-items")


def test_a_drop_refused_for_ownership_passes_once_the_task_is_released(config: ChallengeConfig,
                                                                       tmp_path: Path) -> None:
    folder = classification_drop(tmp_path / "shop-items")
    assert gate(config, folder, "team-x")[0].verdict == "pass"
    intake, private = storages(config)
    for info in list(intake.list("team-x/")):
        intake.delete(info.key)
    assert gate(config, folder, "team-y")[0].verdict == "fail"
    for info in list(private.list("staged/shop-items/")):  # the organizer withdraws team-x's task
        private.delete(info.key)
    outcome, _ = gate(config, folder, "team-y")
    assert outcome.verdict == "pass" and outcome.status == "gated"
    unchanged, report = gate(config, folder, "team-y")  # a pass is cached as before
    assert unchanged.status == "unchanged" and report is None


def test_task_id_clash_between_contributors(config: ChallengeConfig, tmp_path: Path) -> None:
    """Before anything is staged, the earlier drop owns the task id: only the later one fails."""
    import time

    folder = classification_drop(tmp_path / "shop-items")
    put_drop(config, folder, "team-y")
    time.sleep(1.1)  # S3 times its objects to the second
    outcome, report = gate(config, folder, "team-x")
    assert outcome.verdict == "fail" and [c.check for c in report.failures] == ["task_id_owner"]
    assert "claimed by contributor 'team-y', whose drop came first" in report.failures[0].hint
    drops, _ = discover_drops(storages(config)[0])
    earlier = next(d for d in drops if d.contributor == "team-y")
    assert gate_drop(earlier, RunContext(config), run_time_label(), task_id_clashes(drops)["shop-items"])[0].verdict == "pass"


def test_task_id_owned_by_another_contributor_and_staged_data_untouched(config: ChallengeConfig, tmp_path: Path) -> None:
    good = classification_drop(tmp_path / "good" / "shop-items")
    outcome, _ = gate(config, good, "team-x")
    assert outcome.verdict == "pass"
    _, private = storages(config)
    before = {i.key: i.version for i in private.list("staged/")}
    # another contributor claims the same task id later
    intake, _ = storages(config)
    for info in list(intake.list("team-x/")):
        intake.delete(info.key)
    outcome, report = gate(config, good, "team-y")
    assert outcome.verdict == "fail" and "belongs to contributor 'team-x', who staged it first" in " ".join(outcome.failures)
    # unchanged files and the same owner: the failure is kept (it is checked again when the owner changes)
    again, report = gate(config, good, "team-y")
    assert again.status == "unchanged" and report is None and again.verdict == "fail"
    # the owner sends a broken update: it fails and leaves the staged version as it was
    frame = classification_frame()
    frame.loc[1, "Item ID"] = None
    for info in list(intake.list("team-y/")):
        intake.delete(info.key)
    outcome, _ = gate(config, classification_drop(tmp_path / "bad" / "shop-items", frame), "team-x")
    assert outcome.verdict == "fail"
    assert {i.key: i.version for i in private.list("staged/")} == before


def test_a_drop_with_a_symlink_or_a_fifo_fails_unread(config: ChallengeConfig, tmp_path: Path) -> None:
    """A symbolic link to another task's hidden answers passed the gate before: now nothing of the drop is read."""
    import os

    import boto3

    folder = classification_drop(tmp_path / "shop-items")
    put_drop(config, folder, "team-x")
    if config.storage.intake.startswith("s3://"):
        bucket, prefix = config.storage.intake[len("s3://"):].split("/", 1)
        boto3.client("s3", endpoint_url=config.storage.s3.endpoint_url).put_object(
            Bucket=bucket, Key=f"{prefix}/team-x/shop-items//items.csv", Body=b"x")
        expected = "an object key that cannot be used"
    else:
        secret = tmp_path / "answers.parquet"
        pq.write_table(pa.table({"id": ["a"], "label": ["cat"]}), secret)
        drop = Path(config.storage.intake) / "team-x" / "shop-items"
        (drop / "items.csv").unlink()
        os.symlink(secret, drop / "items.csv")
        os.mkfifo(drop / "notes.fifo")
        expected = "items.csv: a symbolic link"
    intake, _ = storages(config)
    drops, _ = discover_drops(intake)
    outcome, report = gate_drop(drops[0], RunContext(config), run_time_label())  # returns: the FIFO is never opened
    assert outcome.verdict == "fail" and outcome.staged is None
    failures = failed_checks(report)
    assert list(failures) == ["regular_files"] and expected in json.dumps(failures["regular_files"][0].as_dict())


def test_label_leak_sample_first_look_rules_out_only_what_the_full_test_would(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import yaml
    from drops import classification_spec

    from challenge.core.task_spec import parse_task_spec
    from challenge.expectations import custom_checks
    from challenge.expectations.custom_checks import CheckContext, label_leak

    rng = np.random.default_rng(0)
    n = 20_000
    labels = rng.choice(["cat", "dog", "bird", "fish"], n)
    code = {"cat": "C", "dog": "D", "bird": "B", "fish": "F"}
    table = pa.table({
        "id": [f"i{i}" for i in range(n)],
        "serial": [f"s{i}" for i in rng.permutation(n)],  # unique: never a lookup leak
        "code": pa.array([code[x] for x in labels]).dictionary_encode(),  # one-to-one leak
        "noisy": pa.array(np.where(rng.random(n) < 0.8, labels, "other")).dictionary_encode(),
        "score": rng.integers(0, 50, n).astype(float),
        "label": labels,
    })
    spec = parse_task_spec(yaml.safe_dump(classification_spec(
        columns={"Serial": "text", "Code": "categorical", "Noisy": "categorical", "Score": "numeric"})), "task.yaml")
    context = CheckContext(spec=spec, drop_dir=Path("."))
    monkeypatch.setattr(custom_checks, "SAMPLE_ROWS", 2_000)
    sampled = label_leak({"data": table}, context)
    monkeypatch.setattr(custom_checks, "SAMPLE_ROWS", n)  # no first look: every column fully tested
    assert [c.as_dict() for c in sampled] == [c.as_dict() for c in label_leak({"data": table}, context)]
    (leak,) = sampled
    assert (leak.check, leak.column, leak.success) == ("label_leak", "code", False)
    assert "one-to-one" in leak.hint and {"value": "C", "label": "cat"} in leak.examples


# --- one report tells everything, in the contributor's names ----------------------------------------


def broken_penguins(folder: Path, without: tuple[str, ...] = ("sex",)) -> Path:
    """The penguins example drop with four problems at once: declared column(s) missing from the file,
    a repeated id, a class of one row and a body mass out of its task.yaml range."""
    import shutil

    import pandas as pd

    shutil.copytree(EXAMPLES / "penguin-lab" / "penguins", folder)
    frame = pd.read_csv(folder / "penguins.csv")
    frame.loc[5, "penguin_id"] = frame.loc[4, "penguin_id"]
    frame.loc[7, "species"] = "Emperor"
    frame.loc[9, "body_mass_g"] = 9000
    frame.drop(columns=list(without)).to_csv(folder / "penguins.csv", index=False)
    return folder


STANDARD_NAMES = {"id", "label"}


def test_every_problem_of_a_drop_is_in_one_report_named_with_the_contributors_columns(config: ChallengeConfig,
                                                                                        tmp_path: Path) -> None:
    """A missing declared column no longer hides the rest: the repeated id, the class with one row and the
    out-of-range value are in the same report (report.json, report.md, the CLI's lines), each named by the
    contributor's column (penguin_id, species, body_mass_g), not id/label."""
    outcome, report = gate(config, broken_penguins(tmp_path / "penguins"), "penguin-lab")
    assert outcome.verdict == "fail" and outcome.staged is None
    found = {(c.check, c.column) for c in report.failures}
    assert found == {("declared_columns_present", "sex"), ("expect_column_values_to_be_unique", "penguin_id"),
                     ("rows_per_class", "species"), ("expect_column_values_to_be_between", "body_mass_g")}, found
    assert not any(c.column in STANDARD_NAMES for c in report.checks if c.column), [c.column for c in report.checks]
    by_check = {c.check: c for c in report.failures}
    assert {"penguin_id": "P0005"} in by_check["expect_column_values_to_be_unique"].examples
    assert by_check["rows_per_class"].examples == [{"species": "Emperor", "rows": 1}]
    assert {"body_mass_g": 9000.0, "penguin_id": "P0010"} in by_check["expect_column_values_to_be_between"].examples
    assert outcome.failures == [
        ("data.sex: declared_columns_present: penguins.csv lacks declared column(s) sex; its columns are penguin_id, "
         "species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, year. Fix task.yaml or the file"),
        ("data.penguin_id: expect_column_values_to_be_unique: Ids repeat: every row needs its own id; deduplicate rows "
         "or renumber. (2 affected)"),
        "data.body_mass_g: expect_column_values_to_be_between: body mass must be in grams, between 2 and 7 kg",
        "data.species: rows_per_class: 1 class(es) have fewer than 5 rows; add rows, merge or drop these classes"]
    _, private = storages(config)
    prefix = outcome.report.removeprefix(private.uri + "/").rsplit("/", 1)[0]
    stored = json.loads(private.read_bytes(f"{prefix}/report.json"))
    assert {(c["check"], c["column"]) for c in stored["failed_checks"]} == found and stored["skipped_checks"] == []
    markdown = private.read_bytes(f"{prefix}/report.md").decode()
    for check, column in found:
        assert f"| `data` | `{column}` | `{check}` |" in markdown
    assert "4 failed" in markdown


def test_a_check_that_cannot_run_says_why_and_the_others_still_run(config: ChallengeConfig, tmp_path: Path) -> None:
    """Without its id and label columns a drop is still checked on what it has (the body mass range),
    and every check of the id or the label is listed as not checked, with the reason."""
    outcome, report = gate(config, broken_penguins(tmp_path / "penguins", ("penguin_id", "species")), "penguin-lab")
    assert outcome.verdict == "fail"
    assert {(c.check, c.column) for c in report.failures} == {
        ("declared_columns_present", "penguin_id, species"), ("expect_column_values_to_be_between", "body_mass_g")}
    assert [c.examples for c in report.failures if c.column == "body_mass_g"] == [[{"row": 10, "body_mass_g": 9000.0}]]
    skipped = {(c.check, c.column): c.skipped for c in report.skipped}
    assert skipped == {
        ("expect_column_values_to_not_be_null", "penguin_id"): "penguin_id is missing from penguins.csv",
        ("expect_column_values_to_be_unique", "penguin_id"): "penguin_id is missing from penguins.csv",
        **{(check, "species"): "species is missing from penguins.csv" for check in (
            "expect_column_values_to_not_be_null", "expect_column_unique_value_count_to_be_between",
            "expect_column_value_lengths_to_be_between", "rows_per_class", "label_leak")},
    }
    assert not any(c.blocking for c in report.skipped) and report.skipped[0].hint.startswith("not checked: ")
    assert "data.species: rows_per_class: not checked: species is missing from penguins.csv" in outcome.failures
    stored = json.loads(report.to_json())
    assert stored["checks_skipped"] == 7 and len(stored["skipped_checks"]) == 7
    assert stored["checks_run"] == len(report.checks) - 7
    assert "## Not checked" in render_markdown(report, "report.json")


def test_a_matching_drop_without_pair_labels_still_checks_its_references(config: ChallengeConfig, tmp_path: Path) -> None:
    """Pairs without their label column: the checks of the pairs' ids run (a pair naming an unknown record
    fails), those of the labels are not checked; the records are checked as usual."""
    _, pairs = matching_tables()
    pairs.loc[0, "left_id"] = "nobody"
    folder = matching_drop(tmp_path / "companies", pairs=pairs.drop(columns=["label"]))
    outcome, report = gate(config, folder)
    assert outcome.verdict == "fail"
    failed = {(c.check, c.column) for c in report.failures}
    assert failed == {("declared_columns_present", "label"), ("pairs_reference_records", "left_id")}, failed
    assert {(c.check, c.column) for c in report.skipped} == {
        ("expect_column_values_to_not_be_null", "label"), ("expect_column_distinct_values_to_equal_set", "label"),
        ("pairs_conflicting_labels", "label")}
    assert {c.check for c in report.checks if c.success} >= {"pairs_not_self", "expect_compound_columns_to_be_unique"}


def test_an_unreadable_file_skips_only_its_own_checks(config: ChallengeConfig, tmp_path: Path) -> None:
    """records.csv that does not parse: its checks, and the pairs' check against it, are not checked; the
    pairs are checked all the same, and the task id that differs from the folder is reported too."""
    folder = matching_drop(tmp_path / "companies", task_id="other-name")
    (folder / "records.csv").write_text('rid,name,city\n"e0-a,broken\n', encoding="utf-8")
    _, report = gate(config, folder)
    failed = {c.check for c in report.failures}
    assert {"task_id_matches_folder", "data_file_readable"} <= failed and "pairs_not_self" not in failed
    why = {c.check: c.skipped for c in report.skipped if c.table == "records"}
    assert why and set(why.values()) == {"records.csv could not be read"}
    assert {c.skipped for c in report.skipped if c.check == "pairs_reference_records"} == {"records.csv could not be read"}
    assert any(c.check == "pairs_conflicting_labels" and c.success for c in report.checks)


def _docs_folder(config: ChallengeConfig, report: GateReport, into: Path) -> Path:
    """The report's data_docs folder on this machine (copied from S3, as the report tells an organizer)."""
    _, private = storages(config)
    prefix = report.data_docs.removeprefix(private.uri + "/").rsplit("/", 1)[0]
    for info in private.list(prefix + "/"):
        private.download_file(info.key, into / info.key.removeprefix(prefix + "/"))
    return into


def test_data_docs_open_offline_in_a_browser(config: ChallengeConfig, tmp_path: Path, backend: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """GX's Data Docs load Bootstrap, jQuery and Font Awesome from CDNs: offline their index was an empty
    table and the pages unstyled. Now no page loads anything from the network, the index lists each
    validation with its status and what was not checked, and the pages speak of the contributor's columns."""
    import re

    import conftest

    _, report = gate(config, broken_penguins(tmp_path / "penguins", ("sex", "species")), "penguin-lab")
    docs = _docs_folder(config, report, tmp_path / "data_docs")
    remote = re.compile(r"""(<(link|script|img)\b[^>]*\b(href|src)\s*=\s*["']https?:|url\(\s*['"]?https?:)""", re.IGNORECASE)
    pages = list(docs.rglob("*.html")) + list(docs.rglob("*.css"))
    assert pages and not [p.name for p in pages if remote.search(p.read_text(encoding="utf-8"))]
    monkeypatch.setattr(conftest, "CHROMIUM_FLAGS", [*conftest.CHROMIUM_FLAGS, "--host-resolver-rules=MAP * ~NOTFOUND",
                                                     "--proxy-server=127.0.0.1:9"])  # networking off
    index = conftest.chromium((docs / "index.html").as_uri(), tmp_path / "profile", f"gate-data-docs-index-{backend}.png",
                              window=(1200, 700))
    assert "penguins.csv" in index and "✖ failed" in index and "validation result" in index
    assert "species is missing from penguins.csv" in index and "rows_per_class" in index
    page = next(docs.glob("validations/**/*.html"))
    shown = conftest.chromium(page.as_uri(), tmp_path / "profile", f"gate-data-docs-validation-{backend}.png")
    assert "offline.css" in shown and "penguin_id" in shown and "body_mass_g" in shown
    assert not re.search(r">\s*label\s*<", shown) and "P0005" in shown
