"""Hostile and careless uploads, on both backends: every one gets a clear final answer, one scoring run
finishes without a traceback, and the good submissions among them are still scored."""

from __future__ import annotations

import gzip
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

from challenge.app.cli import main
from challenge.core import catalog
from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage, key_fits
from challenge.tasks.participant.tools import CheckedFile, check_key_room, my_submissions, submit_file
from challenge.tasks.scoring.final_picks import FinalFile, check_final, read_final

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
        "team-a/penguins/utf16.csv": (csv_bytes(perfect).decode().encode("utf-16"), "invalid",
                                      "is UTF-16 text, not CSV text: save it as UTF-8"),
        "team-a/penguins/utf16le.csv": (csv_bytes(perfect).decode().encode("utf-16-le"), "invalid",  # no byte-order mark
                                        "is UTF-16 text, not CSV text: save it as UTF-8"),
        "team-a/penguins/gzipped.csv": (gzip.compress(csv_bytes(perfect)), "invalid",
                                        "is gzip-compressed, not CSV text: upload the plain file"),
        "team-a/penguins/workbook.csv": (b"PK\x03\x04" + bytes(200), "invalid", "is a ZIP archive (an .xlsx"),
        "team-a/penguins/parquet-named.csv": (parquet_bytes(perfect), "invalid",
                                              "is a Parquet file named .csv: upload it with the .parquet extension"),
        "team-a/penguins/csv-named.parquet": (csv_bytes(perfect), "invalid", "is CSV text, not Parquet: upload it as a .csv"),
        "team-a/penguins/cr-only.csv": (csv_bytes(perfect).replace(b"\n", b"\r"), "scored", "scored"),  # classic Mac OS
        "team-a/penguins/long-cell.csv": (b"id,label\n" + ids[0].encode() + b"," + b"x" * (3 << 20) + b"\n",
                                          "invalid", "has a line longer than 1 MB"),
        "team-a/penguins/long-quoted.csv": (b'id,label\n' + ids[0].encode() + b',"' + b"y" * (3 << 20) + b'"\n',
                                            "invalid", "has a line longer than 1 MB; ids and labels are short"),
        "team-a/penguins/huge-first-line.csv": (b"x" * (3 << 20) + b"\nid,label\n", "invalid",
                                                ("the first line of huge-first-line.csv is 3.0 MB with a value longer "
                                                 "than 128 KB: the first line must be the header id,label")),
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
        over = f"team-a/penguins/{'o' * (1030 - len(prefix) - 21)}.csv"  # 1,030 bytes with the prefix: real S3 refuses it
        client.put_object(Bucket=bucket, Key=f"{prefix}/{over}", Body=csv_bytes(perfect))
        unusable[over] = "S3 keys are at most 1,024 bytes (UTF-8), the location's prefix included"
    else:  # entries that are not regular files
        folder = Path(config.storage.submissions) / "team-a" / "penguins"
        answers = Path(config.storage.private) / "releases" / "r1" / "penguins" / "answers.parquet"
        os.symlink(answers, folder / "answers-link.parquet")
        os.symlink("/etc/passwd", folder / "passwd.csv")
        os.mkfifo(folder / "pipe.csv")
        unusable = {"team-a/penguins/answers-link.parquet": "is a symbolic link",
                    "team-a/penguins/passwd.csv": "is a symbolic link", "team-a/penguins/pipe.csv": "named pipe (FIFO)"}

    # its own key fits, the key of its feedback beside it does not (S3: 1,024 bytes with the prefix; a local folder:
    # 255 bytes a name): scored, and told where its feedback is and to use a shorter name
    room = 255 if backend == "local" else 1024 - len("submissions/team-a/penguins/")
    long_name = "l" * (room - len(".csv") - 3) + ".csv"
    submissions.write_bytes(f"team-a/penguins/{long_name}", csv_bytes(perfect))

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
    moved = records[f"team-a/penguins/{long_name}"]
    note = json.loads(submissions.read_bytes(catalog.unusable_feedback_key("team-a", moved["submission_id"])))
    assert note["status"] == moved["status"] == "scored" and note["message"] == moved["message"]
    assert "this feedback is not beside the upload" in note["message"] and "upload under a shorter name" in note["message"]
    mine = {u.name: u for u in my_submissions(submissions, "team-a", ["penguins"])["penguins"].uploads}
    assert mine[long_name].status == "scored"  # `challenge submissions` finds it there too
    assert "root:" not in json.dumps(records) and "root:" not in "".join(
        submissions.read_bytes(i.key).decode() for i in submissions.list("") if i.key.endswith(".result.json"))
    if backend == "s3":  # a key that cannot carry feedback: the team still hears of it in its folder
        notes = [i.key for i in submissions.list("team-a/") if i.key.startswith("team-a/_unusable-")]
        assert len(notes) == len(unusable) + 1  # and the feedback of the scored upload of too long a name
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
    row = pa.table({"id": [perfect["id"][0].as_py()], "label": ["x" * (60 << 20)]})
    # (no statistics: computing the min and max of 4 GiB of labels took 14 CPU-s, and the scorer reads none)
    with pq.ParquetWriter(folder / "bomb.parquet", row.schema, compression="zstd", use_dictionary=False,
                          write_statistics=False) as writer:
        for _ in range(70):  # one 60 MiB label per row group: 4 GiB once decoded, a few MB on disk
            writer.write_table(row)
    del row
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


@pytest.mark.parametrize(("data", "names", "problem"), [
    (b"\xef\xbb\xbfgood.csv\r\nother.csv\r\n", ("good.csv", "other.csv"), None),  # Notepad's UTF-8 mark: not in the name
    ("good.csv\n".encode("utf-16"), (), "FINAL is UTF-16 text; save it as UTF-8 plain text, holding the file names"),
    (gzip.compress(b"good.csv\n", mtime=0), (), "FINAL is gzip-compressed; write it as plain text"),
    (b"caf\xe9.csv\n", (), "FINAL is not UTF-8 text; save it as UTF-8 plain text"),
])
def test_a_final_file_as_editors_write_it(storage: Storage, data: bytes, names: tuple[str, ...], problem: str | None) -> None:
    storage.write_bytes("team-a/penguins/FINAL", data)
    final = read_final(storage, storage.head("team-a/penguins/FINAL"), "team-a", "penguins")
    assert final.names == names and (final.problem == problem if problem is None else problem in final.problem)


def test_a_final_name_with_an_invisible_character_is_shown_with_it_spelled_out() -> None:
    scored = {"name": "good.csv", "status": "scored", "uploaded_at": "2026-01-01T00:00:00+00:00", "metrics": {},
              "key": "team-a/penguins/good.csv", "submission_id": "x"}
    final = FinalFile("team-a", "penguins", "team-a/penguins/FINAL", ("good\u200b.csv",))
    chosen, message = check_final(final, [scored], "accuracy")
    assert not chosen and "FINAL names 'good<U+200B>.csv' (with the invisible character(s) U+200B: delete them)" in message


def test_submit_refuses_a_name_too_long_for_its_feedback_before_uploading(storage: Storage, backend: str) -> None:
    """`challenge submit`: the upload's key fits, the scorer's feedback beside it would not (S3: 1,024 bytes with
    the location's prefix, here some/prefix/; a local folder: 255 bytes a name): refused, nothing uploaded."""
    room = 255 if backend == "local" else 1024 - len("some/prefix/team-a/penguins/")
    too_long = "n" * (room - len(".csv") - 5) + ".csv"
    assert key_fits(storage, f"team-a/penguins/{too_long}")
    with pytest.raises(ChallengeError, match=r"not uploaded: the name .* is 7 byte\(s\) too long for the scorer's "
                                             r"feedback \(\.result\.json added to the name\): .*upload under a shorter name"):
        submit_file(storage, "team-a", "penguins", CheckedFile(too_long, b"id,label\n"), set())
    with pytest.raises(ChallengeError, match=r"too long for the message \(\.message\.json added to the name\)"):
        check_key_room(storage, f"team-a/penguins/{'n' * (room - len('.csv') - 12)}.csv", with_message=True)
    assert list(storage.list("team-a/")) == []
    got = submit_file(storage, "team-a", "penguins", CheckedFile("n" * (room - len(".csv") - 13) + ".csv", b"id,label\n", "note"),
                      set())
    assert storage.exists(got.key) and key_fits(storage, got.key + ".result.json")
