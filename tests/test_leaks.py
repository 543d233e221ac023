"""Leak checks that find leaks, not shared values: whole records (exact and near copies), identifying
columns, and the gate's label-leak check beyond one-to-one maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import make_config, saved
from drops import classification_drop, classification_frame, papers_drop, papers_frame, with_near_copies
from test_gate import assert_fails, gate
from test_publish import stage, stores

from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError
from challenge.expectations.custom_checks import lookup_fit
from challenge.flows.publish_release import publish_release
from challenge.tasks.release.leaks.checks import LeakColumns, find_leaks

COLUMNS = LeakColumns(["title", "authors", "year"], ["title", "authors"])


def _split(frame: pd.DataFrame, test_rows: list[int]) -> tuple[pa.Table, pa.Table]:
    table = pa.Table.from_pandas(frame.rename(columns={"venue": "label"}), preserve_index=False)
    mask = np.zeros(len(frame), bool)
    mask[test_rows] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


def test_a_copied_record_with_one_word_changed_is_found() -> None:
    frame = papers_frame(300)
    copy = frame.iloc[[7]].assign(paper_id="copy")
    words = copy.iloc[0]["title"].split()
    words[2] = "changed"
    copy["title"] = " ".join(words)
    train, test = _split(pd.concat([frame, copy], ignore_index=True), list(range(250, 301)))
    (finding,) = find_leaks(train, test, COLUMNS)
    assert finding.check == "near_duplicate_records" and finding.test_rows == 1 and finding.refusable
    assert "nearly repeat a train record" in finding.detail and "0 identical" in finding.detail
    assert finding.label_agreement == "1 with the train row's label, 0 with another"  # organizer-only
    assert "label" not in json.dumps(finding.public())


def test_values_that_repeat_by_nature_are_not_a_leak() -> None:
    train, test = _split(papers_frame(400), list(range(320, 400)))
    authors_shared = np.isin(test["authors"].to_numpy(zero_copy_only=False), train["authors"].to_numpy(zero_copy_only=False))
    assert authors_shared.mean() > 0.9  # nearly every test paper shares its authors with a train paper
    assert find_leaks(train, test, COLUMNS) == []
    # a column the contributor marks identifying is checked on its own
    (finding,) = find_leaks(train, test, LeakColumns(COLUMNS.features, COLUMNS.text, ["authors"]))
    assert finding.check == "identifying_column_duplicates" and finding.column == "authors"
    assert finding.test_rows == int(authors_shared.sum())


def test_exact_duplicate_rows_are_counted_without_their_labels_in_public() -> None:
    frame = papers_frame(200)
    frame.loc[150:154, ["title", "authors", "year"]] = frame.loc[0:4, ["title", "authors", "year"]].to_numpy()
    train, test = _split(frame, list(range(150, 200)))
    findings = {f.check: f for f in find_leaks(train, test, COLUMNS)}
    assert findings["exact_duplicate_rows"].test_rows == 5
    assert findings["near_duplicate_records"].test_rows == 5 and "5 identical" in findings["near_duplicate_records"].detail
    assert "label" not in findings["exact_duplicate_rows"].detail


@pytest.mark.usefixtures("prefect_harness")
def test_release_refuses_planted_near_copies_and_passes_shared_authors(backend: str, tmp_path: Path,
                                                                         request: pytest.FixtureRequest) -> None:
    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    honest = make_config(backend, tmp_path / "honest", endpoint)
    stage(honest, papers_drop(tmp_path / "venues"), "library-team")
    publish_release(config_path=saved(honest), release="r1")  # shared authors alone refuse nothing
    public, private = stores(honest)
    manifest = json.loads(public.read_bytes("releases/r1/venues/manifest.json"))
    assert not [f for f in manifest["leak_checks"] if f["refusable"]]

    leaky_drop = papers_drop(tmp_path / "leaky" / "venues", with_near_copies(papers_frame(), 60))
    strict = make_config(backend, tmp_path / "strict", endpoint)
    stage(strict, leaky_drop, "library-team")
    with pytest.raises(ChallengeError, match=r"test record\(s\) nearly repeat a train record .* > "
                                             r"release.max_text_duplicate_fraction"):
        publish_release(config_path=saved(strict), release="r1")
    assert not stores(strict)[0].exists("latest.json")

    lenient = make_config(backend, tmp_path / "lenient", endpoint, release={"max_text_duplicate_fraction": 1})
    stage(lenient, leaky_drop, "library-team")
    publish_release(config_path=saved(lenient), release="r1")
    public, private = stores(lenient)
    (finding,) = json.loads(public.read_bytes("releases/r1/venues/manifest.json"))["leak_checks"]
    assert finding["check"] == "near_duplicate_records" and finding["test_rows"] > 0
    assert "label_agreement" not in finding  # how many repeats share a label is a fact about test labels
    (organizer_copy,) = json.loads(private.read_bytes("releases/r1/venues/leak_checks.json"))
    assert organizer_copy["label_agreement"].startswith(f"{finding['test_rows']} with the train row's label")


def test_a_feature_predicting_the_label_almost_perfectly_fails_the_gate(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame(per_class=20)
    subcategories = {"cat": ["tabby", "siamese", "persian"], "dog": ["pug", "collie"], "bird": ["finch", "owl", "kiwi"]}
    rng = np.random.default_rng(0)
    frame["Breed"] = [rng.choice(subcategories[kind]) for kind in frame["kind"]]  # many-to-one onto the class
    folder = classification_drop(tmp_path / "shop-items", frame,
                                 columns={"Title": "text", "Price": "numeric", "Breed": "categorical"})
    assert_fails(config, folder, "label_leak", "breed", "predicts the label almost perfectly")


def test_a_feature_that_only_correlates_passes_the_gate(config: ChallengeConfig, tmp_path: Path) -> None:
    frame = classification_frame(per_class=20)
    rng = np.random.default_rng(1)
    hint = frame["kind"].map({"cat": "indoor", "dog": "outdoor", "bird": "outdoor"})
    frame["Habitat"] = np.where(rng.random(len(frame)) < 0.8, hint, rng.choice(["indoor", "outdoor"], len(frame)))
    folder = classification_drop(tmp_path / "shop-items", frame,
                                 columns={"Title": "text", "Price": "numeric", "Habitat": "categorical"})
    outcome, _ = gate(config, folder)
    assert outcome.verdict == "pass", outcome.failures


def test_lookup_fit_measures_how_well_a_value_table_predicts() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 4000)
    fold = rng.permutation(4000) % 2
    assert lookup_fit(labels * 10 + rng.integers(0, 10, 4000), labels, fold) == (1.0, 1.0)
    accuracy, coverage = lookup_fit(np.where(rng.random(4000) < 0.1, rng.integers(0, 3, 4000), labels), labels, fold)
    assert 0.9 < accuracy < 0.99 and coverage == 1.0
    assert lookup_fit(np.arange(4000), labels, fold) == (0.0, 0.0)  # ids: the table never applies


def test_an_exact_copy_is_found_when_other_train_records_crowd_its_buckets() -> None:
    # Two-word titles over 12 words: with so few tokens, records of other token sets often share every
    # band of a copy's signature, and the first train record of a bucket is the one compared
    rng = np.random.default_rng(8)
    titles = [f"w{a} w{b}" for a, b in rng.integers(0, 12, (300, 2))]
    train = pa.table({"title": titles, "label": ["a"] * 300})
    test = pa.table({"title": ["w6 w6"], "label": ["a"]})
    assert "w6 w6" in titles[:-1]  # the copy's original, after records crowding its buckets
    findings = {f.check: f for f in find_leaks(train, test, LeakColumns(["title"], ["title"]))}
    assert findings["exact_duplicate_rows"].test_rows == 1
    assert findings["near_duplicate_records"].test_rows == 1 and "1 identical" in findings["near_duplicate_records"].detail
