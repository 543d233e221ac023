"""The catalog owns the storage layout: no other module spells a key, and records read back are typed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_layers import package_modules

from challenge.core import catalog
from challenge.core.catalog import Latest, Manifest, StagedPointer
from challenge.core.errors import ChallengeError
from challenge.core.storage import LocalStorage

# What a storage key contains: the catalog's object names and folder prefixes. A string that holds one of
# them outside the catalog spells a key (or a file of a release folder) by hand.
KEY_FRAGMENTS = sorted({
    catalog.LATEST, catalog.RELEASE_MARKER, catalog.MANIFEST, catalog.CARD, catalog.CROISSANT, catalog.SAMPLE_SUBMISSION,
    catalog.ANSWERS, catalog.ID_MAP, catalog.PAIR_ID_MAP, catalog.LEAK_CHECKS, catalog.ID_KEY, catalog.STAGED_POINTER,
    catalog.STAGED_META, catalog.REPORT_JSON, catalog.REPORT_MARKDOWN, catalog.RESULTS_INDEX,
    catalog.FINAL_FEEDBACK_CACHE, catalog.SCORING_SLOT_NOTE, catalog.FINAL_MARKER, catalog.BOARD_JSON, catalog.PAGE,
    catalog.FEEDBACK_SUFFIX, catalog.ERROR_SUFFIX,
    *(f"{folder}/" for folder in (catalog.RELEASES, catalog.STAGED, catalog.REPORTS, catalog.RESULTS,
                                  catalog.LEADERBOARD, catalog.IMAGES, "cache", "locks", "secrets")),
})


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def key_literals(source: str, name: str) -> list[str]:
    """`line: text` of every string (or f-string part) that holds a key fragment; docstrings are prose."""
    tree = ast.parse(source, name)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            hits = [f for f in KEY_FRAGMENTS if f in node.value]
            if hits:
                found.append(f"{name}:{node.lineno}: {node.value[:80]!r} ({', '.join(hits)})")
    return found


def test_no_module_outside_the_catalog_spells_a_storage_key() -> None:
    found = [hit for module, path in package_modules().items() if module != "challenge.core.catalog"
             for hit in key_literals(path.read_text(), str(path.relative_to(path.parents[1])))]
    assert not found, "storage keys spelled outside challenge/core/catalog.py:\n" + "\n".join(found)


def test_the_key_check_finds_a_spelled_key() -> None:
    source = '"""A docstring may say releases/ and latest.json."""\nkey = f"releases/{r}/{t}/answers.parquet"\n'
    assert key_literals(source, "x.py") == ["x.py:2: 'releases/' (releases/)", "x.py:2: '/answers.parquet' (answers.parquet)"]
    assert key_literals("name = 'penguins'\n", "x.py") == []


def test_keys_are_the_documented_layout() -> None:
    assert catalog.answers_key("r1", "penguins") == "releases/r1/penguins/answers.parquet"
    assert catalog.manifest_key("r1", "penguins") == "releases/r1/penguins/manifest.json"
    assert catalog.staged_pointer_key("penguins") == "staged/penguins/current.json"
    assert catalog.result_key("team-a", "penguins", "abc") == "results/team-a/penguins/abc.json"
    assert catalog.error_key(catalog.result_key("team-a", "penguins", "abc")) == "results/team-a/penguins/abc.error.json"
    assert catalog.feedback_key("team-a/penguins/p.csv") == "team-a/penguins/p.csv.result.json"
    assert catalog.staged_task_of("staged/penguins/current.json") == "penguins"
    assert catalog.staged_task_of("staged/penguins/0123/current.json") is None
    assert catalog.is_release_marker_key("releases/r1/release.json")
    assert not catalog.is_release_marker_key("releases/r1/penguins/release.json")


def test_records_read_back_typed(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    latest = Latest(release="r1", published_at="2026-01-01T00:00:00+00:00", tasks=["penguins"])
    catalog.write_record(store, catalog.LATEST, latest)
    assert catalog.read_record(store, catalog.LATEST, Latest) == latest
    assert list(__import__("json").loads(store.read_bytes(catalog.LATEST))) == ["release", "published_at", "tasks"]
    store.write_bytes(catalog.staged_pointer_key("penguins"), b'{"task_id": "penguins", "kind": "classification"}')
    with pytest.raises(ChallengeError, match=r"staged/penguins/current.json is not a valid StagedPointer record .*contributor"):
        catalog.read_staged_pointer(store, "penguins")
    assert catalog.read_staged_pointer(store, "digits") is None
    store.write_bytes(catalog.manifest_key("r1", "penguins"), b"not json")
    with pytest.raises(ChallengeError, match="manifest.json is not a valid Manifest record"):
        catalog.read_manifest(store, "r1", "penguins")
    extra = Manifest(task_id="p", kind="classification", release="r1", metric="accuracy", answers_sha256="0" * 64,
                     files=[], written_by_a_newer_version={"seed": 1})
    assert catalog.parse_record(Manifest, extra.to_json(), "m").model_extra == {
        "written_by_a_newer_version": {"seed": 1}}  # kept, not lost
    assert isinstance(StagedPointer.model_fields["prefix"].annotation, type)
