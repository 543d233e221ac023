"""Ids that survive every reader: a submission made the obvious way (read the published test.csv with the
reader's defaults, predict, write id,label) with pandas, polars, DuckDB or the csv module is valid, and
scores exactly as the same predictions written with the published string ids, in the scorer
(tasks/scoring/score.py) and in the participant's local check (read_submission + validate on the public test
ids). pandas and polars read `0003` as the integer 3, so their files say `3`: when the published ids
are all digits of one width W, an id of digits only shorter than W is the published id padded with
zeros (see IdIndex.padded). Run on a real release (the penguins example drop, 4-digit ids) and on a
generated task of 10,000 test rows (5-digit ids, integer labels), published through the flows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved, stores
from drops import classification_spec, write_drop
from test_publish import stage

from challenge.core import catalog
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import score_submissions
from challenge.tasks.scoring.score import AnswerKey, evaluate, load_answer_key
from challenge.tasks.scoring.submissions import IdIndex, ParticipantVisibleError, Submission, read_submission, validate

pytestmark = pytest.mark.usefixtures("prefect_harness")
GENERATED_ROWS = 20_000  # test_fraction 0.5: 10,000 test rows, ids of 5 digits


@dataclass
class Released:
    """A published classification task as a participant and the scorer see it."""

    config: object
    task: str
    test_csv: Path  # the published test.csv, downloaded
    key: AnswerKey  # the scorer's
    test_ids: pa.Array  # the participant's local check: the ids of the public test.parquet
    classes: pa.Array  # ... and the classes of the public train.parquet
    integer_labels: bool  # the labels are integers (a reader of train.csv gives ints, so does the model)

    def model(self, ids: list) -> list:
        """The predictions a participant's model makes for the ids as the reader gave them: right for
        3 rows out of 4 (a score that a misaligned row would change), the same whatever the id's type."""
        truth = {int(i): label for i, label in zip(self.key.ids.to_pylist(), self.key.labels.to_pylist())}
        classes = self.classes.to_pylist()
        labels = []
        for raw in ids:
            number = int(float(raw))
            right = truth[number]
            labels.append(right if number % 4 else classes[(classes.index(right) + 1) % len(classes)])
        return [int(label) for label in labels] if self.integer_labels else labels

    def reference(self) -> bytes:
        """The same predictions written with the published string ids (pyarrow, all text)."""
        ids = pa_csv.read_csv(self.test_csv, convert_options=pa_csv.ConvertOptions(column_types={"id": pa.string()}))["id"]
        out = io.BytesIO()
        pa_csv.write_csv(pa.table({"id": ids, "label": pa.array([str(v) for v in self.model(ids.to_pylist())])}), out)
        return out.getvalue()


def generated_drop(folder: Path) -> Path:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({
        "item": [f"item-{i:05d}" for i in range(GENERATED_ROWS)],
        "x1": rng.normal(0, 1, GENERATED_ROWS).round(6),
        "x2": rng.uniform(0, 100, GENERATED_ROWS).round(4),
        "colour": rng.choice(["blue", "green", "grey", "pink"], GENERATED_ROWS),
        "digit": rng.integers(0, 10, GENERATED_ROWS),  # integer classes 0..9, as the digits task has
    })
    spec = classification_spec(task_id="many-ids", title="Many ids", id_column="item", label_column="digit",
                               columns={"x1": "numeric", "x2": "numeric", "colour": "categorical"},
                               data="items.csv", split={"test_fraction": 0.5, "seed": 1}, metric="accuracy")
    return write_drop(folder, spec, {"items.csv": frame})


@pytest.fixture(scope="module", params=["penguins", "generated"])
def released(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Released:
    root = tmp_path_factory.mktemp(f"readers-{request.param}")
    config = make_config("local", root, None, policy={"max_submissions_per_day": 100},
                         teams=[{"id": "team-a", "name": "Team A"}])
    if request.param == "penguins":
        task, folder, contributor = "penguins", EXAMPLES / "penguin-lab" / "penguins", "penguin-lab"
    else:
        task, folder, contributor = "many-ids", generated_drop(root / "drop" / "many-ids"), "team-x"
    stage(config, folder, contributor)
    publish_release(config_path=saved(config), release="r1")
    public, private, _ = stores(config)
    test_csv = root / "test.csv"
    test_csv.write_bytes(public.read_bytes(catalog.release_file_key("r1", task, catalog.table_file("test", "csv"))))

    def public_column(table: str, column: str) -> pa.Array:
        data = public.read_bytes(catalog.release_file_key("r1", task, catalog.table_file(table)))
        return pq.read_table(io.BytesIO(data), columns=[column])[column].cast(pa.string()).combine_chunks()

    key = load_answer_key(public, private, "r1", task)
    if request.param == "generated":
        assert len(key.ids) >= 10_000 and set(pc.utf8_length(key.ids).to_pylist()) == {5}
    return Released(config, task, test_csv, key, public_column("test", "id"), pc.unique(public_column("train", "label")).sort(),
                    integer_labels=request.param == "generated")


# ---- the readers: each reads test.csv with its defaults and writes id,label the obvious way ----------


def with_pandas(released: Released, out: Path, fmt: str) -> str:
    test = pd.read_csv(released.test_csv)
    sub = pd.DataFrame({"id": test["id"], "label": released.model(test["id"].tolist())})
    sub.to_csv(out, index=False) if fmt == "csv" else sub.to_parquet(out, index=False)
    return str(test["id"].dtype)


def with_pandas_floats(released: Released, out: Path, fmt: str) -> str:
    """A frame whose columns became float (a NaN on the way, np.column_stack): ids 3.0, labels 3.0."""
    test = pd.read_csv(released.test_csv)
    labels = released.model(test["id"].tolist())
    sub = pd.DataFrame({"id": test["id"].astype(float),
                        "label": pd.Series(labels, dtype=float) if released.integer_labels else labels})
    sub.to_csv(out, index=False) if fmt == "csv" else sub.to_parquet(out, index=False)
    return str(sub["id"].dtype)


def with_polars(released: Released, out: Path, fmt: str) -> str:
    test = pl.read_csv(released.test_csv)
    sub = pl.DataFrame({"id": test["id"], "label": released.model(test["id"].to_list())})
    sub.write_csv(out) if fmt == "csv" else sub.write_parquet(out)
    return str(test.schema["id"])


def with_duckdb(released: Released, out: Path, fmt: str) -> str:
    con = duckdb.connect()
    con.execute("CREATE TABLE test AS SELECT * FROM read_csv(?)", [str(released.test_csv)])
    ids = [row[0] for row in con.execute("SELECT id FROM test").fetchall()]
    predictions = pa.table({"label": pa.array(released.model(ids))})
    con.register("predictions", predictions)
    con.execute(f"COPY (SELECT test.id, predictions.label FROM test POSITIONAL JOIN predictions) TO '{out}' "
                f"(FORMAT {fmt})")
    return str(con.execute("SELECT typeof(id) FROM test LIMIT 1").fetchone()[0])


def with_csv_module(released: Released, out: Path, fmt: str) -> str:
    with released.test_csv.open(newline="", encoding="utf-8") as file:
        ids = [row["id"] for row in csv.DictReader(file)]
    with out.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "label"])
        writer.writerows(zip(ids, released.model(ids)))
    return type(ids[0]).__name__


READERS: dict[str, tuple[Callable[[Released, Path, str], str], tuple[str, ...]]] = {
    "pandas": (with_pandas, ("csv", "parquet")),
    "pandas-floats": (with_pandas_floats, ("csv", "parquet")),
    "polars": (with_polars, ("csv", "parquet")),
    "duckdb": (with_duckdb, ("csv", "parquet")),
    "csv-module": (with_csv_module, ("csv",)),
}
ID_TYPES = {"pandas": "int64", "pandas-floats": "float64", "polars": "Int64", "duckdb": "VARCHAR", "csv-module": "str"}
CASES = [(reader, fmt) for reader, (_, formats) in READERS.items() for fmt in formats]


def submission(name: str, data: bytes, task: str) -> Submission:
    return Submission(f"team-a/{task}/{name}", "team-a", task, name, "etag", len(data), datetime.now(timezone.utc))


def scored(released: Released, name: str, data: bytes) -> dict:
    """The scorer's metrics for a file (ParticipantVisibleError for an invalid one)."""
    return evaluate(submission(name, data, released.task), data, released.key)


def checked_locally(released: Released, name: str, data: bytes) -> list[str]:
    """The participant's local check: the labels aligned with the public test ids."""
    table = read_submission(data, name, len(released.test_ids))
    return validate(table, IdIndex(released.test_ids), released.classes).dictionary_decode().to_pylist()


@pytest.mark.parametrize(("reader", "fmt"), CASES, ids=[f"{r}-{f}" for r, f in CASES])
def test_a_file_written_the_obvious_way_scores_as_the_string_ids_do(released: Released, reader: str, fmt: str,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / f"submission.{fmt}"
    id_type = READERS[reader][0](released, out, fmt)
    assert id_type == ID_TYPES[reader]  # what this case is about: the reader's own idea of `0003`
    data, reference = out.read_bytes(), released.reference()
    assert scored(released, out.name, data) == scored(released, "reference.csv", reference)
    assert checked_locally(released, out.name, data) == checked_locally(released, "reference.csv", reference)
    if reader in ("pandas", "polars") and fmt == "csv":  # the ids went out as numbers: not the published text
        assert not set(pa_csv.read_csv(io.BytesIO(data), convert_options=pa_csv.ConvertOptions(
            column_types={"id": pa.string()}))["id"].to_pylist()) & set(released.test_ids.to_pylist()[:50])


def test_the_scoring_flow_scores_a_pandas_file_as_the_string_ids(released: Released, tmp_path: Path) -> None:
    """End to end through score_submissions: uploads of pandas' CSV and Parquet and of the string ids, one
    result each, the same public and private scores."""
    _, private, submissions = stores(released.config)
    names = {"pandas.csv": None, "pandas.parquet": None, "strings.csv": released.reference()}
    for name in ("pandas.csv", "pandas.parquet"):
        with_pandas(released, tmp_path / name, name.rsplit(".", 1)[1])
        names[name] = (tmp_path / name).read_bytes()
    for name, data in names.items():
        submissions.write_bytes(f"team-a/{released.task}/{name}", data)
    score_submissions(config_path=saved(released.config))
    feedback = {name: json.loads(submissions.read_bytes(f"team-a/{released.task}/{name}{catalog.FEEDBACK_SUFFIX}"))
                for name in names}
    assert {f["status"] for f in feedback.values()} == {"scored"}, feedback
    records = [json.loads(private.read_bytes(i.key)) for i in private.list(f"{catalog.RESULTS}/team-a/{released.task}/")]
    metrics = {r["name"]: r["metrics"] for r in records}
    assert len(metrics) == 3 and all(m == metrics["strings.csv"] for m in metrics.values()), metrics


# ---- what the rule does not accept, and what it says ---------------------------------------------------


def reference_table(released: Released) -> pa.Table:
    return pa_csv.read_csv(io.BytesIO(released.reference()), convert_options=pa_csv.ConvertOptions(
        column_types={"id": pa.string(), "label": pa.string()}))


def with_ids(table: pa.Table, ids: dict[int, str | int]) -> bytes:
    """The reference file with the ids of some rows replaced (by text, or by ints in an int64 Parquet)."""
    values = table["id"].to_pylist()
    for row, value in ids.items():
        values[row] = value
    out = io.BytesIO()
    if all(isinstance(v, int) for v in ids.values()):
        pq.write_table(table.set_column(0, "id", pa.array([int(v) for v in values], pa.int64())), out)
    else:
        pa_csv.write_csv(table.set_column(0, "id", pa.array(values, pa.string())), out)
    return out.getvalue()


def both_say(released: Released, name: str, data: bytes) -> str:
    """The message of an invalid file: the scorer's and the local check's, which must be the same."""
    with pytest.raises(ParticipantVisibleError) as scorer:
        scored(released, name, data)
    with pytest.raises(ParticipantVisibleError) as local:
        checked_locally(released, name, data)
    assert str(scorer.value) == str(local.value)
    return str(scorer.value)


def test_one_id_written_two_ways_is_one_id_repeated(released: Released) -> None:
    table = reference_table(released)
    first, second = table["id"][0].as_py(), table["id"][1].as_py()
    short = str(int(first))
    message = both_say(released, "sub.csv", with_ids(table, {1: short}))
    assert message.startswith(f"1 id(s) appear more than once (e.g. {first}); {short} and {first} are the same id "
                              f"(an id of digits only is the published id padded with zeros to {len(first)} digits)")
    assert f"1 test id(s) are missing (e.g. {second})" in message
    as_numbers = both_say(released, "sub.parquet", with_ids(table, {1: int(first)}))  # int64: no second spelling
    assert as_numbers.startswith(f"1 id(s) appear more than once (e.g. {first}); 1 test id(s) are missing")


def test_fewer_leading_zeros_are_still_the_published_id(released: Released) -> None:
    """`03` for `0003`: digits only, shorter than W, so padded like `3` (no reader writes it, none is misread)."""
    table = reference_table(released)
    row = next(i for i, v in enumerate(table["id"].to_pylist()) if v.startswith("00"))
    data = with_ids(table, {row: table["id"][row].as_py()[1:]})
    assert scored(released, "sub.csv", data) == scored(released, "reference.csv", released.reference())


@pytest.mark.parametrize(("spelled", "why"), [
    (lambda i: "+" + str(int(i)), "a sign"),
    (lambda i: " " + str(int(i)), "a space"),
    (lambda i: str(int(i)) + " ", "a trailing space"),
    (lambda i: i + ".5", "not a whole number"),
    (lambda i: "0" + i, "wider than the published ids"),
    (lambda i: str(int(i)).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")), "other digits"),
    (lambda i: "-" + str(int(i)), "negative"),
])
def test_other_spellings_are_not_test_ids(released: Released, spelled: Callable[[str], str], why: str) -> None:
    table = reference_table(released)
    first = table["id"][0].as_py()
    bad = spelled(first)
    message = both_say(released, "sub.csv", with_ids(table, {0: bad}))
    assert message == f"1 id(s) are not test ids (e.g. {bad}); 1 test id(s) are missing (e.g. {first})", why


def test_a_number_wider_than_the_ids_is_not_a_test_id(released: Released) -> None:
    table = reference_table(released)
    first = table["id"][0].as_py()
    wide = 10 ** len(first) + int(first)
    for name, data in (("sub.csv", with_ids(table, {0: str(wide)})), ("sub.parquet", with_ids(table, {0: wide}))):
        assert both_say(released, name, data) == f"1 id(s) are not test ids (e.g. {wide}); 1 test id(s) are missing (e.g. {first})"


def test_whole_float_labels_name_integer_classes_and_others_do_not(released: Released) -> None:
    """`3.0` is the class `3` when every class is an integer (the generated task's 0..9, like digits); a
    task of named classes takes labels as they are, and `3.5` is no class anywhere."""
    table = reference_table(released)
    labels = table["label"].to_pylist()
    out = io.BytesIO()
    pa_csv.write_csv(table.set_column(1, "label", pa.array([v + ".0" for v in labels])), out)
    if released.integer_labels:
        assert scored(released, "sub.csv", out.getvalue()) == scored(released, "reference.csv", released.reference())
    else:
        assert "label(s) are not classes of this task" in both_say(released, "sub.csv", out.getvalue())
    labels[0] = "3.5"
    out = io.BytesIO()
    pa_csv.write_csv(table.set_column(1, "label", pa.array(labels)), out)
    assert "1 label(s) are not classes of this task (e.g. 3.5)" in both_say(released, "sub.csv", out.getvalue())
