"""Hostile and careless uploads, on both backends: every one gets a clear final answer, one scoring run
finishes without a traceback, and the good submissions among them are still scored."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import saved, stores
from test_scoring import penguins_released, results

from challenge.cli import main

pytestmark = pytest.mark.usefixtures("prefect_harness")


def csv_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    return out.getvalue()


def parquet_bytes(table: pa.Table, **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def corpus(perfect: pa.Table) -> dict[str, tuple[bytes, str, str]]:
    """key → (bytes, expected status, a phrase of the expected message)."""
    ids, labels = perfect["id"].to_pylist(), perfect["label"].to_pylist()
    n = len(ids)
    arabic = [i.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) for i in ids]
    huge = "x" * 1_500_000
    return {
        "team-a/penguins/good.csv": (csv_bytes(perfect), "scored", "scored"),
        "team-b/penguins/good.parquet": (parquet_bytes(perfect), "scored", "scored"),
        "team-a/penguins/dup-columns.csv": (b"id,id,label\n" + b"".join(f"{i},{i},{lab}\n".encode() for i, lab in zip(ids, labels)),
                                            "invalid", "id appears more than once"),
        "team-a/penguins/arabic-digits.csv": (csv_bytes(pa.table({"id": arabic, "label": labels})), "invalid",
                                              f"{n} id(s) are not test ids"),
        "team-a/penguins/inf-label.parquet": (parquet_bytes(pa.table({"id": ids, "label": [float("inf")] * n})),
                                              "invalid", "not classes of this task (e.g. inf)"),
        "team-a/penguins/nan-label.parquet": (parquet_bytes(pa.table({"id": ids, "label": [float("nan")] * n})),
                                              "invalid", "empty or NaN label"),
        "team-a/penguins/list-label.parquet": (parquet_bytes(pa.table({"id": ids, "label": [[lab] for lab in labels]})),
                                               "invalid", "the label column holds list<"),
        "team-a/penguins/struct-id.parquet": (parquet_bytes(pa.table({"id": [{"x": i} for i in ids], "label": labels})),
                                              "invalid", "the id column holds struct<"),
        "team-a/penguins/plain-bomb.parquet": (parquet_bytes(pa.table({"id": ids, "label": [huge] * n}),
                                                             compression="zstd", use_dictionary=False),
                                               "invalid", "decodes to"),
        "team-a/penguins/dict-bomb.parquet": (parquet_bytes(pa.table({"id": ids, "label": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([huge]))}), compression="zstd", dictionary_pagesize_limit=1 << 30),
            "invalid", "ids and labels are short"),
        "team-a/penguins/too-many-rows.parquet": (parquet_bytes(pa.table({"id": [f"x{i}" for i in range(5000)],
                                                                          "label": ["Adelie"] * 5000})),
                                                  "invalid", "the file has 5000 rows"),
        "team-a/penguins/huge-header.csv": (b",".join(f"column_{i:06d}".encode() for i in range(60_000)) + b"\nx\n",
                                            "invalid", "columns must be exactly id,label"),
        "team-a/penguins/empty.csv": (b"", "invalid", "empty.csv is empty"),
        "team-a/penguins/only-header.csv": (b"id,label\n", "invalid", f"{n} test id(s) are missing"),
        "team-a/penguins/garbage.csv": (bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)),
                                        "invalid", ""),
        "team-a/penguins/garbage.parquet": (b"PAR1" + b"\x00" * 100 + b"PAR1", "invalid", "cannot be read as Parquet"),
        "team-a/penguins/utf16.csv": (csv_bytes(perfect).decode().encode("utf-16"), "invalid", ""),
        "team-a/penguins/semicolons.csv": (b"id;label\n" + b"".join(f"{i};{lab}\n".encode() for i, lab in zip(ids, labels)),
                                           "invalid", "separate the columns with commas"),
        "team-a/penguins/no-ids.csv": (b"id,label\n" + b"".join(f",{lab}\n".encode() for lab in labels), "invalid",
                                       f"{n} row(s) have no id"),
        "team-a/penguins/long-ids.csv": (csv_bytes(pa.table({"id": ["9" * 5000] * n, "label": labels})), "invalid",
                                         "ids and labels are short"),
        "team-a/penguins/index.parquet": (parquet_bytes(pa.table({"__index_level_0__": list(range(n)), "id": ids,
                                                                  "label": labels})), "invalid", "pandas index"),
        "team-a/penguins/dup-columns.parquet": (parquet_bytes(pa.Table.from_arrays(
            [pa.array(ids), pa.array(ids), pa.array(labels)], names=["id", "id", "label"])),
            "invalid", "id appears more than once"),
        "team-a/penguins/trailing-comma.csv": (b"id,label,\n" + b"".join(f"{i},{lab},\n".encode() for i, lab in zip(ids, labels)),
                                               "invalid", "unexpected"),
    }


def test_hostile_uploads_get_an_answer_and_never_stop_scoring(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config, perfect = penguins_released(backend, tmp_path, request)
    _, private, submissions = stores(config)
    cases = corpus(perfect)
    for key, (data, _, _) in cases.items():
        submissions.write_bytes(key, data)
    unusable: dict[str, str] = {}  # key → a phrase of its rejection
    if backend == "s3":  # keys no local folder can hold, uploaded as S3 allows
        client = boto3.client("s3", endpoint_url=config.storage.s3.endpoint_url)
        bucket, prefix = config.storage.submissions[len("s3://"):].split("/", 1)
        for key, phrase in {"team-a//y.csv": "empty, '.' or '..' segment", "team-a/../x.csv": "'..' segment",
                            "team-a/penguins/tab\there.csv": "control character", "team-a/penguins/./dot.csv": "'.'"}.items():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=csv_bytes(perfect))
            unusable[key] = phrase
    else:  # entries that are not regular files
        folder = Path(config.storage.submissions) / "team-a" / "penguins"
        answers = Path(config.storage.private) / "releases" / "r1" / "penguins" / "answers.parquet"
        os.symlink(answers, folder / "answers-link.parquet")
        os.symlink("/etc/passwd", folder / "passwd.csv")
        os.mkfifo(folder / "pipe.csv")
        unusable = {"team-a/penguins/answers-link.parquet": "is a symbolic link",
                    "team-a/penguins/passwd.csv": "is a symbolic link", "team-a/penguins/pipe.csv": "named pipe (FIFO)"}

    config_file = saved(config)
    assert main(["--config", config_file, "score"]) == 0  # the run finishes; nothing is left for a retry
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "internal error" not in out.out

    for key, (_, status, phrase) in cases.items():
        note = json.loads(submissions.read_bytes(key + ".result.json"))
        assert note["status"] == status and phrase in note["message"], (key, note)
        assert len(json.dumps(note)) < 4000, key  # feedback stays small whatever the upload held
    records = {r["key"]: r for r in results(config)}
    for key, phrase in unusable.items():
        assert records[key]["status"] == "rejected" and phrase in records[key]["message"], (key, records[key])
    assert "root:" not in json.dumps(records) and "root:" not in "".join(
        submissions.read_bytes(i.key).decode() for i in submissions.list("") if i.key.endswith(".result.json"))
    if backend == "s3":  # a key that cannot carry feedback: the team still hears of it in its folder
        notes = [i.key for i in submissions.list("team-a/") if i.key.startswith("team-a/_unusable-")]
        assert len(notes) == len(unusable)
    assert not [i.key for i in private.list("results/") if i.key.endswith(".error.json")]

    # the next run has nothing left to do: every upload has its final answer
    assert main(["--config", config_file, "score"]) == 0
    assert "0 new submission(s)" in capsys.readouterr().out


def test_bombs_are_refused_within_a_capped_address_space(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The scoring process under RLIMIT_AS = 3 GiB: a Parquet file whose labels decode to 4 GiB and a
    2 GiB FINAL are refused from their metadata; the run completes and still scores the good file."""
    import resource
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    config, perfect = penguins_released("local", tmp_path, request)
    folder = Path(config.storage.submissions) / "team-a" / "penguins"
    folder.mkdir(parents=True)
    (folder / "good.csv").write_bytes(csv_bytes(perfect))
    label = "x" * (60 << 20)
    with pq.ParquetWriter(folder / "bomb.parquet", pa.schema([("id", pa.string()), ("label", pa.string())]),
                          compression="zstd", use_dictionary=False) as writer:
        for i in range(70):  # one 60 MiB label per row group: 4 GiB once decoded, a few MB on disk
            writer.write_table(pa.table({"id": [perfect["id"][i % perfect.num_rows].as_py()], "label": [label]}))
    del label
    with open(folder / "FINAL", "wb") as final:
        final.truncate(2 << 30)  # sparse: 2 GiB listed, nothing on disk
    cap = 3 << 30

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "ERROR"}
    run = subprocess.run([str(Path(sys.executable).parent / "challenge"), "--config", saved(config), "score"],
                         env=env, preexec_fn=limit, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stdout + run.stderr and "MemoryError" not in run.stdout + run.stderr
    submissions = stores(config)[2]
    bomb = json.loads(submissions.read_bytes("team-a/penguins/bomb.parquet.result.json"))
    assert bomb["status"] == "invalid" and "decodes to 4" in bomb["message"]
    final = json.loads(submissions.read_bytes("team-a/penguins/FINAL.result.json"))
    assert final["status"] == "not accepted" and f"FINAL is {2 << 30} bytes" in final["message"]
    assert json.loads(submissions.read_bytes("team-a/penguins/good.csv.result.json"))["status"] == "scored"
