"""publish_release on Prefect's real engine, on both backends: splits, layout, ids,
reproducibility, checksums, Croissant, atomicity and bad inputs."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, put_drop, saved
from drops import classification_drop, classification_frame, matching_drop, matching_tables

from challenge.core.run_context import RunContext
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError
from challenge.core.storage import S3Storage, Storage, open_location
from challenge.flows.publish_release import publish_release
from challenge.tasks.intake.drops import discover_drops, run_time_label
from challenge.tasks.intake.gate import gate_drop
from challenge.tasks.release.build import PublishError
from challenge.tasks.release.upload import upload_and_verify

pytestmark = pytest.mark.usefixtures("prefect_harness")
EXAMPLE_TASKS = {"penguins": "penguin-lab", "digits": "vision-team", "febrl-people": "linkage-team"}


def stores(config: ChallengeConfig) -> tuple[Storage, Storage]:
    return open_location(config, "public"), open_location(config, "private")


def stage(config: ChallengeConfig, folder: Path, contributor: str) -> None:
    put_drop(config, folder, contributor)
    drops, _ = discover_drops(open_location(config, "intake"))
    drop = next(d for d in drops if d.contributor == contributor and d.folder == folder.name)
    outcome, _ = gate_drop(drop, RunContext(config), run_time_label())
    assert outcome.verdict == "pass", outcome.failures


@pytest.fixture(scope="module", params=["local", "s3"])
def staged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ChallengeConfig:
    """The three example tasks, staged once per backend for this module."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    return stage_examples(make_config(request.param, tmp_path_factory.mktemp(f"pub-{request.param}"), endpoint))


def stage_examples(config: ChallengeConfig) -> ChallengeConfig:
    """`config` with the three example tasks staged."""
    for task, contributor in EXAMPLE_TASKS.items():
        stage(config, EXAMPLES / contributor / task, contributor)
    return config


@pytest.fixture(scope="module")
def release_a(staged: ChallengeConfig) -> dict:
    return publish_release(config_path=saved(staged), release="a")


def read_parquet(storage: Storage, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(key)))


def read_csv(storage: Storage, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(storage.read_bytes(key)), dtype=str, keep_default_na=False)


def test_release_layout_and_latest(staged: ChallengeConfig, release_a: dict) -> None:
    public, private = stores(staged)
    assert json.loads(public.read_bytes("latest.json"))["release"] == "a"
    assert json.loads(public.read_bytes("latest.json"))["tasks"] == sorted(EXAMPLE_TASKS)
    for task in EXAMPLE_TASKS:
        prefix = f"releases/a/{task}"
        names = {i.key[len(prefix) + 1:] for i in public.list(prefix + "/")}
        expected = {"train.csv", "train.parquet", "test.csv", "test.parquet", "sample_submission.csv",
                    "README.md", "manifest.json", "croissant.json"}
        assert expected <= names
        if task == "febrl-people":
            assert {"records.csv", "records.parquet"} <= names
        if task == "digits":
            images = [n for n in names if n.startswith("images/")]
            assert len(images) == 200
            train = read_parquet(public, f"{prefix}/train.parquet")
            assert all(public.exists(f"{prefix}/{p}") for p in train["image"].to_pylist()[:20])
        assert private.exists(f"releases/a/{task}/answers.parquet") and private.exists(f"releases/a/{task}/id_map.parquet")
        card = public.read_bytes(f"{prefix}/README.md").decode()
        assert "## Submit" in card and f"challenge submit predictions.csv --task {task}" in card


def test_public_test_files_hold_no_label_or_usage(staged: ChallengeConfig, release_a: dict) -> None:
    public, _ = stores(staged)
    for task in EXAMPLE_TASKS:
        for ext in ("csv", "parquet"):
            key = f"releases/a/{task}/test.{ext}"
            columns = (read_csv(public, key).columns if ext == "csv" else read_parquet(public, key).column_names)
            assert "label" not in columns and "usage" not in columns
    for info in public.list("releases/a/"):
        if info.key.endswith((".csv", ".parquet")) and "/test." in info.key:
            assert b"usage" not in public.read_bytes(info.key)


def test_csv_and_parquet_hold_the_same_rows(staged: ChallengeConfig, release_a: dict) -> None:
    public, _ = stores(staged)
    for task in EXAMPLE_TASKS:
        for table in ("train", "test") + (("records",) if task == "febrl-people" else ()):
            prefix = f"releases/a/{task}/{table}"
            from_csv = read_csv(public, prefix + ".csv")
            from_parquet = read_parquet(public, prefix + ".parquet").to_pandas()
            assert list(from_csv.columns) == list(from_parquet.columns)
            assert len(from_csv) == len(from_parquet)
            for column in from_csv.columns:
                parquet_values = from_parquet[column]
                if pd.api.types.is_numeric_dtype(parquet_values):
                    csv_values = pd.to_numeric(from_csv[column].replace("", np.nan))
                    assert np.allclose(csv_values, parquet_values, equal_nan=True), (task, table, column)
                else:
                    assert from_csv[column].tolist() == parquet_values.astype(object).where(parquet_values.notna(), "").tolist()


def test_manifest_checksums_and_answer_key_hash(staged: ChallengeConfig, release_a: dict) -> None:
    public, private = stores(staged)
    for task in EXAMPLE_TASKS:
        manifest = json.loads(public.read_bytes(f"releases/a/{task}/manifest.json"))
        assert manifest["split"]["seed"] is not None and manifest["split"]["counts"]["test"] > 0
        for entry in manifest["files"]:
            data = public.read_bytes(f"releases/a/{task}/{entry['path']}")
            assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        answers = private.read_bytes(f"releases/a/{task}/answers.parquet")
        assert hashlib.sha256(answers).hexdigest() == manifest["answers_sha256"]
        tables = {e["path"]: e for e in manifest["files"] if "rows" in e}
        assert tables["train.parquet"]["schema"][0]["name"] == "id"


def test_classification_split_is_stratified_and_ids_are_opaque(staged: ChallengeConfig, release_a: dict) -> None:
    public, private = stores(staged)
    for task in ("penguins", "digits"):
        train = read_parquet(public, f"releases/a/{task}/train.parquet")
        answers = read_parquet(private, f"releases/a/{task}/answers.parquet")
        id_map = read_parquet(private, f"releases/a/{task}/id_map.parquet").to_pandas()
        fraction = 0.2 if task == "penguins" else 0.25
        totals = Counter(train["label"].to_pylist()) + Counter(answers["label"].to_pylist())
        test_counts = Counter(answers["label"].to_pylist())
        for label, n in totals.items():
            assert abs(test_counts[label] - n * fraction) <= 1, (task, label)
        # public/private partition of test, stratified the same way
        public_counts = Counter(answers.filter(pa.compute.equal(answers["usage"], "public"))["label"].to_pylist())
        for label, n in test_counts.items():
            assert abs(public_counts[label] - n * 0.3) <= 1
        originals = set(id_map["original_id"])
        published = set(train["id"].to_pylist()) | set(answers["id"].to_pylist())
        assert published == set(id_map["id"]) and not published & originals
        assert not any(o in p for o in list(originals)[:50] for p in published)
        test = read_parquet(public, f"releases/a/{task}/test.parquet")
        assert set(test["id"].to_pylist()) == set(answers["id"].to_pylist())
        sample = read_csv(public, f"releases/a/{task}/sample_submission.csv")
        assert list(sample.columns) == ["id", "label"] and set(sample["id"]) == set(answers["id"].to_pylist())
        assert set(sample["label"]) <= set(totals)


def test_matching_split_keeps_each_group_on_one_side(staged: ChallengeConfig, release_a: dict) -> None:
    public, private = stores(staged)
    prefix = "releases/a/febrl-people"
    train = read_parquet(public, f"{prefix}/train.parquet").to_pandas()
    answers = read_parquet(private, f"{prefix}/answers.parquet").to_pandas()
    test = read_parquet(public, f"{prefix}/test.parquet").to_pandas().merge(answers, on="id")
    record_map = read_parquet(private, f"{prefix}/id_map.parquet").to_pandas().set_index("id")["original_id"]
    entity = lambda rid: record_map[rid].split("-")[1]  # noqa: E731  FEBRL ids: rec-<entity>-org / rec-<entity>-dup-k
    sides: dict[str, set[str]] = {}
    for side, frame in (("train", train), ("test", test)):
        for left, right in zip(frame["left_id"], frame["right_id"]):
            sides.setdefault(entity(left), set()).add(side)
            sides.setdefault(entity(right), set()).add(side)
    assert all(len(s) == 1 for s in sides.values()), "a group of matching records straddles train and test"
    manifest = json.loads(public.read_bytes(f"{prefix}/manifest.json"))
    notes = manifest["split"]["notes"]
    assert notes["test_records_seen_in_train_pairs"] == 0.0
    assert abs(notes["achieved_test_fraction"] - 0.2) <= 0.05
    assert set(answers["label"]) == {"0", "1"}


def test_same_seed_gives_identical_files_in_another_release(staged: ChallengeConfig, release_a: dict) -> None:
    public, _ = stores(staged)
    publish_release(config_path=saved(staged), release="b")
    assert json.loads(public.read_bytes("latest.json"))["release"] == "b"
    for task in EXAMPLE_TASKS:
        a = {e["path"]: e["sha256"] for e in json.loads(public.read_bytes(f"releases/a/{task}/manifest.json"))["files"]}
        b = {e["path"]: e["sha256"] for e in json.loads(public.read_bytes(f"releases/b/{task}/manifest.json"))["files"]}
        data_files = [p for p in a if p.endswith((".csv", ".parquet", ".png"))]
        assert data_files and all(a[p] == b[p] for p in data_files)


def test_croissant_metadata_validates_with_mlcroissant(staged: ChallengeConfig, release_a: dict, tmp_path: Path) -> None:
    import mlcroissant as mlc

    public, _ = stores(staged)
    for task in ("penguins", "febrl-people"):
        folder = tmp_path / task
        for info in public.list(f"releases/a/{task}/"):
            if "/images/" not in info.key:
                public.download_file(info.key, folder / info.key.rsplit("/", 1)[-1])
        metadata = json.loads((folder / "croissant.json").read_text())
        dataset = mlc.Dataset(jsonld=str(folder / "croissant.json"))
        assert not dataset.metadata.issues.errors, dataset.metadata.issues.report()
        first = next(iter(dataset.records(record_set="train")))
        assert "train/label" in first
        labels = [f for rs in metadata["recordSet"] for f in rs.get("field", []) if f["name"] == "label"]
        assert labels and all("cr:Label" in f["dataType"] for f in labels)
        assert any(rs.get("dataType") == "cr:Split" for rs in metadata["recordSet"])
        csvs = [d for d in metadata["distribution"] if d["@id"] == "train.csv"]
        assert csvs[0]["sameAs"] == "train.parquet"
        if task == "febrl-people":
            left = next(f for rs in metadata["recordSet"] if rs["@id"] == "train" for f in rs["field"] if f["name"] == "left_id")
            assert left["references"] == {"field": {"@id": "records/id"}}


# --- bad inputs and atomicity ---------------------------------------------------------------


def test_existing_release_is_never_overwritten(staged: ChallengeConfig, release_a: dict) -> None:
    public, _ = stores(staged)
    before = {i.key: i.version for i in public.list("releases/a/")}
    with pytest.raises(ChallengeError, match="release 'a' already exists"):
        publish_release(config_path=saved(staged), release="a")
    assert {i.key: i.version for i in public.list("releases/a/")} == before


@pytest.mark.parametrize("name", ["../evil", "a/b", "x\\y", "", ".hidden", "a" * 65])
def test_release_name_with_path_characters(staged: ChallengeConfig, name: str) -> None:
    with pytest.raises(ChallengeError, match="not allowed"):
        publish_release(config_path=saved(staged), release=name or "/")


def test_unstaged_or_failed_task_cannot_be_published(staged: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame()
    frame.loc[0, "Item ID"] = None
    put_drop(staged, classification_drop(tmp_path / "shop-items", frame), "team-x")
    drop = next(d for d in discover_drops(open_location(staged, "intake"))[0] if d.folder == "shop-items")
    assert gate_drop(drop, RunContext(staged), run_time_label())[0].verdict == "fail"
    with pytest.raises(ChallengeError, match="cannot publish nope, shop-items: not staged"):
        publish_release(config_path=saved(staged), release="never", tasks=["shop-items", "nope", "penguins"])
    public, _ = stores(staged)
    assert not list(public.list("releases/never/"))


def test_matching_groups_that_make_the_fraction_impossible(config: ChallengeConfig, tmp_path: Path) -> None:
    # every record matches every other: one group holds all pairs
    records = pd.DataFrame({"rid": [f"r{i}" for i in range(12)], "name": [f"n{i}" for i in range(12)], "city": ["x"] * 12})
    pairs = pd.DataFrame([(f"r{i}", f"r{i + 1}", 1) for i in range(11)] + [(f"r{i}", f"r{i + 2}", 0) for i in range(10)],
                         columns=["left_id", "right_id", "label"])
    stage(config, matching_drop(tmp_path / "companies", records=records, pairs=pairs), "team-m")
    with pytest.raises(ChallengeError, match=r"test fraction of 0.20 impossible: the closest split achieved"):
        publish_release(config_path=saved(config), release="r1")


def test_matching_records_copied_across_train_and_test_fail_the_release(backend: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    """A record copied under another id, its copy in pairs on the other side: a lookup leak."""
    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    records, pairs = matching_tables(entities=20)
    copies = records[records["rid"].str.endswith("-a")].assign(rid=lambda f: "copy-" + f["rid"])
    extra = pd.DataFrame([(f"copy-e{i}-a", f"e{(i + 7) % 20}-b", 0) for i in range(20)],
                         columns=["left_id", "right_id", "label"])
    drop = matching_drop(tmp_path / "companies", records=pd.concat([records, copies]), pairs=pd.concat([pairs, extra]))
    strict = make_config(backend, tmp_path / "strict", endpoint)
    stage(strict, drop, "team-m")
    with pytest.raises(ChallengeError, match=r"record\(s\) of test pairs have the same features as a record of train"):
        publish_release(config_path=saved(strict), release="r1")
    lenient = make_config(backend, tmp_path / "lenient", endpoint, release={"max_duplicate_fraction": 1})
    stage(lenient, drop, "team-m")
    publish_release(config_path=saved(lenient), release="r1")
    public, _ = stores(lenient)
    manifest = json.loads(public.read_bytes("releases/r1/companies/manifest.json"))
    findings = {f["check"]: f for f in manifest["leak_checks"]}
    assert findings["exact_duplicate_rows"]["test_rows"] > 0 and findings["exact_duplicate_rows"]["refusable"]
    # the same copies are near-identical records too: reported for a matching task, never refusing on their own
    near = findings["near_duplicate_records"]
    assert near["test_rows"] >= findings["exact_duplicate_rows"]["test_rows"] and not near["refusable"]


def _failing_uploads(monkeypatch: pytest.MonkeyPatch, storage_class: type, after: int, action) -> list[int]:
    calls = [0]
    original = storage_class.upload_file

    def upload(self, key, path):  # noqa: ANN001, ANN202
        calls[0] += 1
        if calls[0] > after:
            action()
        return original(self, key, path)

    monkeypatch.setattr(storage_class, "upload_file", upload)
    return calls


def test_failure_midway_leaves_latest_untouched_and_rerun_completes(config: ChallengeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    for task in ("penguins", "digits"):
        stage(config, EXAMPLES / EXAMPLE_TASKS[task] / task, EXAMPLE_TASKS[task])
    publish_release(config_path=saved(config), release="first")
    public, _ = stores(config)
    latest = public.read_bytes("latest.json")

    def boom() -> None:
        raise ConnectionError("injected: storage went away during upload")

    storage_class = type(public)
    with monkeypatch.context() as patch:
        _failing_uploads(patch, storage_class, after=40, action=boom)
        with pytest.raises(Exception):  # both rebuilt (not carried over), so files are uploaded
            publish_release(config_path=saved(config), release="second", tasks=["penguins", "digits"])
    assert public.read_bytes("latest.json") == latest
    assert not public.exists("releases/second/release.json")
    assert list(public.list("releases/second/"))  # it did get midway
    result = publish_release(config_path=saved(config), release="second", tasks=["penguins", "digits"])
    assert json.loads(public.read_bytes("latest.json"))["release"] == "second"
    first = {e["path"]: e["sha256"] for e in json.loads(public.read_bytes("releases/first/penguins/manifest.json"))["files"]}
    second = {e["path"]: e["sha256"] for e in json.loads(public.read_bytes("releases/second/penguins/manifest.json"))["files"]}
    assert first["train.parquet"] == second["train.parquet"] and result.task_ids == ["digits", "penguins"]


def test_s3_server_stopped_during_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real outage: the S3 server stops mid-release; latest.json still points at the previous one."""
    from conftest import _free_port
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("CHALLENGE_S3_MAX_ATTEMPTS", "2")
    try:
        config = make_config("s3", tmp_path, endpoint)
        stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
        publish_release(config_path=saved(config), release="one")
        public, _ = stores(config)
        latest = public.read_bytes("latest.json")
        with monkeypatch.context() as patch:
            _failing_uploads(patch, S3Storage, after=3, action=server.stop)
            with pytest.raises(Exception):  # rebuilt, so uploaded (an unchanged task would be copied)
                publish_release(config_path=saved(config), release="two", tasks=["penguins"])
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # same process: same data
        server.start()
        assert public.read_bytes("latest.json") == latest
        publish_release(config_path=saved(config), release="two", tasks=["penguins"])
        assert json.loads(public.read_bytes("latest.json"))["release"] == "two"
    finally:
        server.stop()


def test_cli_publish_prints_where_the_release_is(staged: ChallengeConfig, release_a: dict, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import yaml
    from prefect.artifacts import Artifact

    from challenge.app.cli import main

    config_file = tmp_path / "challenge.yaml"
    config_file.write_text(yaml.safe_dump(staged.model_dump(mode="json")))
    assert main(["--config", str(config_file), "publish", "--release", "cli-1", "--task", "penguins"]) == 0
    out = capsys.readouterr().out
    assert "release cli-1 published at" in out and "releases/cli-1" in out and "penguins/README.md" in out
    assert "train 275" in out
    table = Artifact.get("release")
    assert table is not None and "penguins" in str(table.data)
    assert main(["--config", str(config_file), "publish", "--release", "cli-1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_card_counts_classes_in_train_only(staged: ChallengeConfig, release_a: dict) -> None:
    """Counts over all splits minus the train counts would give the test labels' distribution."""
    public, _ = stores(staged)
    for task in ("penguins", "febrl-people"):
        card = public.read_bytes(f"releases/a/{task}/README.md").decode()
        assert "all splits" not in card
        header = "| class | train rows |" if task == "penguins" else "| label | train pairs |"
        rows = card.split(header)[1].split("\n\n")[0].strip().splitlines()[1:]
        shown = {line.split("|")[1].strip(): int(line.split("|")[2]) for line in rows}
        train = read_parquet(public, f"releases/a/{task}/train.parquet")["label"].to_pylist()
        assert shown == {str(label): n for label, n in Counter(train).items()}
        manifest = json.loads(public.read_bytes(f"releases/a/{task}/manifest.json"))
        assert "classes_only_in_train" not in json.dumps(manifest)  # which classes test lacks stays private


def test_pointers_and_keys_are_hints_or_errors_never_silently_recreated(config: ChallengeConfig) -> None:
    from challenge.core.catalog import ID_KEY as KEY_OBJECT
    from challenge.flows.score_submissions import score_submissions

    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    public, private = stores(config)
    whole = public.read_bytes("latest.json")
    public.write_bytes("latest.json", whole[: len(whole) // 2])  # truncated, as a killed writer could leave it
    assert score_submissions(config_path=saved(config)).pending == 0  # rebuilt from the release marker
    assert json.loads(public.read_bytes("latest.json"))["release"] == "r1"

    public.delete("latest.json")
    with pytest.raises(ChallengeError, match=r"latest.json is missing, but 1 release\(s\) exist .*copy .*r1/release.json"):
        score_submissions(config_path=saved(config))
    public.write_bytes("latest.json", whole)

    key = private.read_bytes(KEY_OBJECT)
    private.delete(KEY_OBJECT)
    with pytest.raises(ChallengeError, match="id key .* is missing, but releases exist .* restore the key"):
        publish_release(config_path=saved(config), release="r2")
    assert not private.exists(KEY_OBJECT) and not public.exists("releases/r2/release.json")
    private.write_bytes(KEY_OBJECT, key)
    publish_release(config_path=saved(config), release="r2")
    ids = [read_parquet(public, f"releases/{r}/penguins/train.parquet")["id"].to_pylist() for r in ("r1", "r2")]
    assert ids[0] == ids[1]  # the same key: the same published ids


def test_upload_and_verify_catches_an_object_missing_or_not_the_built_file(storage: Storage, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "built"
    (folder / "images").mkdir(parents=True)
    for i in range(5):
        (folder / "images" / f"{i}.png").write_bytes(bytes([i]) * 3000)
    assert upload_and_verify(storage, folder, "r1/t") == [f"r1/t/images/{i}.png" for i in range(5)]
    original = type(storage).upload_file

    def tampering(self: Storage, key: str, path: Path) -> str | None:
        md5 = original(self, key, path)
        if key.endswith("3.png"):
            self.write_bytes(key, b"tampered in between")
        return md5

    def skipping(self: Storage, key: str, path: Path) -> str | None:
        return hashlib.md5(path.read_bytes()).hexdigest() if key.endswith("2.png") else original(self, key, path)

    with monkeypatch.context() as patch:
        patch.setattr(type(storage), "upload_file", tampering)
        with pytest.raises(PublishError, match=r"r2/t/images/3\.png: uploaded object's MD5 differs"):
            upload_and_verify(storage, folder, "r2/t")
    with monkeypatch.context() as patch:
        patch.setattr(type(storage), "upload_file", skipping)
        with pytest.raises(PublishError, match=r"r3/t/images/2\.png: uploaded object is missing"):
            upload_and_verify(storage, folder, "r3/t")
