"""The computing steps run on their own: Arrow tables and typed records in, files and records out, with
no storage location, moto or Prefect (the flows and their end-to-end tests wire them to storage)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from challenge.app.scaffold import EXAMPLES_DIR
from challenge.core import catalog
from challenge.core.config import ChallengeConfig
from challenge.core.run_context import RunContext
from challenge.core.task_spec import parse_task_spec
from challenge.tasks.intake.read_tables import read_table
from challenge.tasks.intake.staged import StagedTask
from challenge.tasks.intake.standardize import standardize_records
from challenge.tasks.release import build as release_build
from challenge.tasks.release import id_order
from challenge.tasks.release.build import PublishError, build_task_release
from challenge.tasks.release.id_order import IdOrderSpill
from challenge.tasks.scoring.batches import BatchOutcome, check_task_ids, pending_by_task, tally
from challenge.tasks.scoring.submissions import Inbox, Submission

PENGUINS = EXAMPLES_DIR / "penguin-lab" / "penguins"
CONFIG = ChallengeConfig.model_validate({"name": "steps", "title": "Steps", "storage": {
    n: f"/nonexistent/{n}" for n in ("intake", "public", "private", "submissions")}})


def staged_files(tables: dict[str, pa.Table], folder: Path) -> dict[str, Path]:
    """The staged tables as the local Parquet files a release is built from."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return {name: folder / f"{name}.parquet" for name in tables}


def staged_penguins(folder: Path) -> StagedTask:
    spec = parse_task_spec((PENGUINS / "task.yaml").read_text(), "task.yaml")
    raw = read_table(PENGUINS / spec.data, spec.data, [spec.id_column, spec.label_column,
                                                      *(c for c, s in spec.columns.items() if s.modality.value != "numeric")])
    standardized = standardize_records(raw, spec, "data", spec.data)
    assert standardized.table is not None
    return StagedTask(spec, "staged/penguins/0123456789abcdef", staged_files({"data": standardized.table}, folder),
                      "f" * 64)


def test_a_release_is_built_from_tables_alone(tmp_path: Path) -> None:
    def no_images(jobs: list) -> None:
        raise AssertionError("penguins has no images")

    built = build_task_release(staged_penguins(tmp_path / "staged"), CONFIG, b"k" * 32, no_images, "r1", tmp_path / "out")
    public, private = built.public_dir, built.private_dir
    manifest = catalog.parse_record(catalog.Manifest, (public / catalog.MANIFEST).read_bytes(), "manifest")
    assert manifest.task_id == "penguins" and manifest.release == "r1"
    assert manifest.answers_sha256 == hashlib.sha256((private / catalog.ANSWERS).read_bytes()).hexdigest()
    listed = {f.path: f.sha256 for f in manifest.files}
    assert {"train.csv", "train.parquet", "test.csv", "test.parquet", catalog.SAMPLE_SUBMISSION, catalog.CARD} <= set(listed)
    assert all(hashlib.sha256((public / p).read_bytes()).hexdigest() == d for p, d in listed.items())
    answers = pq.read_table(private / catalog.ANSWERS)
    test = pq.read_table(public / "test.parquet")
    assert "label" not in test.column_names and answers["id"].to_pylist() == test["id"].to_pylist()
    assert built.counts["train"] + built.counts["test"] == 344
    # the same inputs give the same bytes: a release is reproducible
    again = build_task_release(staged_penguins(tmp_path / "staged"), CONFIG, b"k" * 32, no_images, "r1", tmp_path / "again")
    assert (again.private_dir / catalog.ANSWERS).read_bytes() == (private / catalog.ANSWERS).read_bytes()


def test_a_release_with_train_rows_repeated_in_test_is_refused(tmp_path: Path) -> None:
    staged = staged_penguins(tmp_path / "staged")
    data = staged.table("data")
    twice = data.take(list(range(data.num_rows)) * 2)  # every row twice, under new ids
    twice = twice.set_column(0, "id", pa.array([f"x{i}" for i in range(twice.num_rows)]))
    with pytest.raises(PublishError, match="leaks between train and test"):
        build_task_release(StagedTask(staged.spec, staged.prefix, staged_files({"data": twice}, tmp_path / "twice"),
                                      staged.fingerprint), CONFIG,
                           b"k" * 32, lambda jobs: None, "r1", tmp_path)


DIGITS = EXAMPLES_DIR / "vision-team" / "digits"


def test_each_image_is_hashed_once_for_the_leak_checks_and_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from challenge.tasks.release import build as release_build
    from challenge.tasks.release import images as release_images

    spec = parse_task_spec((DIGITS / "task.yaml").read_text(), "task.yaml")
    raw = read_table(DIGITS / spec.data, spec.data, [spec.id_column, spec.label_column, "image"])
    standardized = standardize_records(raw, spec, "data", spec.data)
    assert standardized.table is not None
    staged = StagedTask(spec, "staged/digits/0123456789abcdef", staged_files({"data": standardized.table}, tmp_path / "staged"),
                        "f" * 64)

    def fetch(jobs: list[tuple[str, Path]]) -> None:
        for original, path in jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((DIGITS / spec.images / original).read_bytes())

    hashed: Counter[Path] = Counter()
    sha256_file = release_images.sha256_file

    def counting(path: Path) -> str:
        hashed[path] += 1
        return sha256_file(path)

    monkeypatch.setattr(release_images, "sha256_file", counting)
    monkeypatch.setattr(release_build, "sha256_file", counting)
    built = build_task_release(staged, CONFIG, b"k" * 32, fetch, "r1", tmp_path / "out")
    images = {path: n for path, n in hashed.items() if path.parent.name == catalog.IMAGES}
    assert len(images) == 200 and set(images.values()) == {1}
    manifest = json.loads((built.public_dir / catalog.MANIFEST).read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"] if f["path"].startswith("images/")}
    assert len(listed) == 200 and all(hashlib.sha256((built.public_dir / p).read_bytes()).hexdigest() == d
                                      for p, d in listed.items())


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
    from challenge.tasks.scoring.score import MAX_ATTEMPTS, AnswerKey, ScoringContext, settle

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
    finals, errors = settle(list(reversed(subs)), list(reversed(outcomes)), ScoringContext(RunContext(config), {"t"}, counts, {}), key)
    assert [(s.name, r["status"]) for s, r in finals] == [
        ("0.csv", "scored"), ("1.csv", "invalid"), ("3.csv", "scored"), ("4.csv", "rejected: quota")]
    assert [r["quota"]["left"] for _, r in finals] == [1, 1, 0, 0]  # invalid files use no quota
    assert [s.name for s, _ in errors] == ["2.csv"] and sum(counts.values()) == 2
    last_attempt = ScoringContext(RunContext(config), {"t"}, {}, {subs[2].submission_id: MAX_ATTEMPTS - 1})
    finals, errors = settle([subs[2]], [outcomes[2]], last_attempt, key)
    assert errors == [] and finals[0][1]["status"] == "failed"  # the last attempt is recorded, not retried


def test_the_quota_counts_only_results_against_the_current_answer_key() -> None:
    from challenge.tasks.scoring.score import scored_per_day

    def record(task: str, key: str, status: str = "scored") -> dict:
        return {"team": "a", "task_id": task, "uploaded_at": "2026-11-01T10:00:00+00:00", "status": status,
                "scored_by": {"answers_sha256": key}}

    records = [record("t", "old"), record("t", "old"), record("t", "new"), record("t", "new", "invalid"), record("u", "k")]
    assert scored_per_day(records) == {("a", "t", "2026-11-01"): 3, ("a", "u", "2026-11-01"): 1}
    assert scored_per_day(records, {"t": "new", "u": "k"}) == {("a", "t", "2026-11-01"): 1, ("a", "u", "2026-11-01"): 1}


def test_id_order_spill_gives_every_row_once_in_number_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    numbers = rng.permutation(103)
    table = pa.table({"value": pa.array([f"v{n}" for n in numbers]),
                      "colour": pa.array(rng.choice(["red", "blue"], 103)).dictionary_encode()})
    spill = IdOrderSpill(tmp_path / "spill", 103, bucket_rows=10)
    for start in range(0, 103, 17):  # batches cut across buckets
        spill.add(table.slice(start, 17), numbers[start:start + 17])
    parts = list(spill.buckets())
    assert [len(p[1]) for p in parts] == [10] * 10 + [3]
    assert np.concatenate([p[1] for p in parts]).tolist() == list(range(103))
    assert sum((p[0]["value"].to_pylist() for p in parts), []) == [f"v{n}" for n in range(103)]
    assert not (tmp_path / "spill").exists()  # spill files removed once read


def test_a_streamed_release_does_not_depend_on_batch_or_bucket_size(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    staged = staged_penguins(tmp_path / "staged")
    whole = build_task_release(staged, CONFIG, b"k" * 32, lambda jobs: None, "r1", tmp_path / "whole")
    monkeypatch.setattr(release_build, "BATCH_ROWS", 7)
    monkeypatch.setattr(id_order, "BUCKET_ROWS", 11)
    pieces = build_task_release(staged, CONFIG, b"k" * 32, lambda jobs: None, "r1", tmp_path / "pieces")
    for name in ("train.csv", "test.csv", catalog.SAMPLE_SUBMISSION):
        assert (pieces.public_dir / name).read_bytes() == (whole.public_dir / name).read_bytes(), name
    for name in ("train.parquet", "test.parquet"):
        assert pq.read_table(pieces.public_dir / name).equals(pq.read_table(whole.public_dir / name)), name
    assert (pieces.private_dir / catalog.ANSWERS).read_bytes() == (whole.private_dir / catalog.ANSWERS).read_bytes()
    assert pieces.leaks == whole.leaks and pieces.counts == whole.counts
