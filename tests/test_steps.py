"""The computing steps run on their own: Arrow tables and typed records in, files and records out, with
no storage location, moto or Prefect (the flows and their end-to-end tests wire them to storage)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from challenge import catalog
from challenge.config import ChallengeConfig
from challenge.scaffold import EXAMPLES_DIR
from challenge.task_spec import parse_task_spec
from challenge.tasks.read_tables import read_table
from challenge.tasks.release_build import PublishError, build_task_release
from challenge.tasks.score_batches import BatchOutcome, check_task_ids, pending_by_task, tally
from challenge.tasks.staged import StagedTask
from challenge.tasks.standardize import standardize_records
from challenge.tasks.submissions import Inbox, Submission

PENGUINS = EXAMPLES_DIR / "penguin-lab" / "penguins"
CONFIG = ChallengeConfig.model_validate({"name": "steps", "title": "Steps", "storage": {
    n: f"/nonexistent/{n}" for n in ("intake", "public", "private", "submissions")}})


def staged_penguins() -> StagedTask:
    spec = parse_task_spec((PENGUINS / "task.yaml").read_text(), "task.yaml")
    raw = read_table(PENGUINS / spec.data, spec.data, [spec.id_column, spec.label_column,
                                                      *(c for c, s in spec.columns.items() if s.modality.value != "numeric")])
    standardized = standardize_records(raw, spec, "data", spec.data)
    assert standardized.table is not None
    return StagedTask(spec, "staged/penguins/0123456789abcdef", {"data": standardized.table}, "f" * 64)


def test_a_release_is_built_from_tables_alone(tmp_path: Path) -> None:
    def no_images(jobs: list) -> None:
        raise AssertionError("penguins has no images")

    built = build_task_release(staged_penguins(), CONFIG, b"k" * 32, no_images, "r1", tmp_path)
    public, private = built.public_dir, built.private_dir
    manifest = catalog.parse_record(catalog.Manifest, (public / catalog.MANIFEST).read_bytes(), "manifest")
    assert manifest.task_id == "penguins" and manifest.release == "r1"
    assert manifest.answers_sha256 == hashlib.sha256((private / catalog.ANSWERS).read_bytes()).hexdigest()
    listed = {f["path"]: f["sha256"] for f in manifest.files}
    assert {"train.csv", "train.parquet", "test.csv", "test.parquet", catalog.SAMPLE_SUBMISSION, catalog.CARD} <= set(listed)
    assert all(hashlib.sha256((public / p).read_bytes()).hexdigest() == d for p, d in listed.items())
    answers = pq.read_table(private / catalog.ANSWERS)
    test = pq.read_table(public / "test.parquet")
    assert "label" not in test.column_names and answers["id"].to_pylist() == test["id"].to_pylist()
    assert built.counts["train"] + built.counts["test"] == 344
    # the same inputs give the same bytes: a release is reproducible
    again = build_task_release(staged_penguins(), CONFIG, b"k" * 32, no_images, "r1", tmp_path / "again")
    assert (again.private_dir / catalog.ANSWERS).read_bytes() == (private / catalog.ANSWERS).read_bytes()


def test_a_release_with_train_rows_repeated_in_test_is_refused(tmp_path: Path) -> None:
    staged = staged_penguins()
    data = staged.tables["data"]
    twice = data.take(list(range(data.num_rows)) * 2)  # every row twice, under new ids
    twice = twice.set_column(0, "id", pa.array([f"x{i}" for i in range(twice.num_rows)]))
    with pytest.raises(PublishError, match="leaks between train and test"):
        build_task_release(StagedTask(staged.spec, staged.prefix, {"data": twice}, staged.fingerprint), CONFIG,
                           b"k" * 32, lambda jobs: None, "r1", tmp_path)


def _sub(team: str, task_id: str, name: str) -> Submission:
    return Submission(f"{team}/{task_id}/{name}", team, task_id, name, "e" + name, 10,
                      datetime(2026, 11, 1, tzinfo=timezone.utc))


def test_pending_submissions_are_grouped_by_task() -> None:
    subs = [_sub("a", "t2", "x.csv"), _sub("a", "t1", "y.csv"), _sub("b", "t1", "z.csv")]
    inbox = Inbox(submissions=subs, feedback=set(), final_choices={}, ignored=[])
    done = {subs[1].submission_id}
    assert pending_by_task(inbox, done, None) == {"t1": [subs[2]], "t2": [subs[0]]}
    assert list(pending_by_task(inbox, set(), {"t2"})) == ["t2"]
    assert check_task_ids(None, ["t1", "t2"]) == {"t1", "t2"}
    with pytest.raises(Exception, match="unknown task id"):
        check_task_ids(["t3"], ["t1", "t2"])


def test_a_run_is_tallied_per_status_and_task() -> None:
    new = [{"task_id": "t1", "status": "scored"}, {"task_id": "t1", "status": "invalid"},
           {"task_id": "t2", "status": "scored"}, {"task_id": "elsewhere", "status": "rejected"}]
    statuses, per_task = tally(new, {"t1": BatchOutcome(), "t2": BatchOutcome(errors=[("k", "boom")])})
    assert statuses == {"scored": 2, "invalid": 1, "rejected": 1}
    assert per_task == {"t1": {"scored": 1, "invalid": 1}, "t2": {"scored": 1, "error (retried)": 1}}
    assert json.dumps(per_task)  # plain values, ready for an artifact


def test_a_batch_is_settled_in_upload_order_with_the_daily_quota() -> None:
    from challenge.tasks.scoring import MAX_ATTEMPTS, AnswerKey, settle

    config = ChallengeConfig.model_validate({**CONFIG.model_dump(), "policy": {"max_submissions_per_day": 2},
                                             "teams": [{"id": "a", "name": "A"}]})
    key = AnswerKey(release="r1", task_id="t", kind="classification", metric="accuracy", sha256="0" * 64,
                    ids=pa.array(["1"]), labels=pa.array(["x"]), public=pa.array([True]), classes=pa.array(["x"]))
    subs = [_sub("a", "t", f"{i}.csv") for i in range(5)]
    subs = [Submission(s.key, s.team, s.task_id, s.name, s.etag, s.size, s.uploaded_at.replace(hour=i))
            for i, s in enumerate(subs)]
    scored = ("valid", {"public": {"accuracy": 0.5}, "private": {"accuracy": 0.5}})
    invalid = ("final", {"status": "invalid", "message": "bad ids"})
    outcomes = [scored, invalid, ("error", RuntimeError("boom")), scored, scored]
    counts: dict = {}
    finals, errors = settle(list(reversed(subs)), list(reversed(outcomes)), config, key, {"t"}, counts, {})
    assert [(s.name, r["status"]) for s, r in finals] == [
        ("0.csv", "scored"), ("1.csv", "invalid"), ("3.csv", "scored"), ("4.csv", "rejected: quota")]
    assert [r["quota"]["left"] for _, r in finals] == [1, 1, 0, 0]  # invalid files use no quota
    assert [s.name for s, _ in errors] == ["2.csv"] and sum(counts.values()) == 2
    finals, errors = settle([subs[2]], [outcomes[2]], config, key, {"t"}, {}, {subs[2].submission_id: MAX_ATTEMPTS - 1})
    assert errors == [] and finals[0][1]["status"] == "failed"  # the last attempt is recorded, not retried


def test_the_quota_counts_only_results_against_the_current_answer_key() -> None:
    from challenge.tasks.scoring import scored_per_day

    def record(task: str, key: str, status: str = "scored") -> dict:
        return {"team": "a", "task_id": task, "uploaded_at": "2026-11-01T10:00:00+00:00", "status": status,
                "scored_by": {"answers_sha256": key}}

    records = [record("t", "old"), record("t", "old"), record("t", "new"), record("t", "new", "invalid"), record("u", "k")]
    assert scored_per_day(records) == {("a", "t", "2026-11-01"): 3, ("a", "u", "2026-11-01"): 1}
    assert scored_per_day(records, {"t": "new", "u": "k"}) == {("a", "t", "2026-11-01"): 1, ("a", "u", "2026-11-01"): 1}
