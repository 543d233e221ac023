"""What a participant reads about a task: the dataset card and Croissant metadata."""

from __future__ import annotations

from typing import Any

from challenge import catalog
from challenge.task_spec import Modality, TaskSpec, snake_case

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_MODALITY_TYPE = {Modality.text: "sc:Text", Modality.categorical: "sc:Text", Modality.image: "sc:Text"}


def _feature_type(spec: TaskSpec, column: str, schema: dict[str, str]) -> str:
    original = next((c for c in spec.columns if snake_case(c) == column), None)
    if original and spec.columns[original].modality is not Modality.numeric:
        return _MODALITY_TYPE[spec.columns[original].modality]
    return "sc:Integer" if schema.get(column, "").startswith("int") else "sc:Float"


def _table_record_set(spec: TaskSpec, name: str, entry: dict[str, Any], split: str | None) -> dict[str, Any]:
    schema = {f["name"]: f["type"] for f in entry["schema"]}
    fields = []
    for column in schema:
        if column in ("id", "left_id", "right_id"):
            data_type: Any = "sc:Text"
        elif column == "label":
            data_type = ["sc:Integer" if spec.kind == "matching" else "sc:Text", "cr:Label"]
        else:
            data_type = _feature_type(spec, column, schema)
        field: dict[str, Any] = {
            "@type": "cr:Field", "@id": f"{name}/{column}", "name": column, "dataType": data_type,
            "source": {"fileObject": {"@id": f"{name}.parquet"}, "extract": {"column": column}},
        }
        if column in ("left_id", "right_id"):
            field["references"] = {"field": {"@id": "records/id"}}
        fields.append(field)
    record_set: dict[str, Any] = {"@type": "cr:RecordSet", "@id": name, "name": name, "key": {"@id": f"{name}/id"}, "field": fields}
    if split:
        record_set["description"] = f"The {split} split (see the `splits` record set)."
    return record_set


def croissant_metadata(spec: TaskSpec, release: str, files: list[dict[str, Any]], counts: dict[str, int],
                       published: str) -> dict[str, Any]:
    """MLCommons Croissant 1.0 JSON-LD for one task of a release (fields read the typed Parquet files)."""
    distribution = []
    for entry in files:
        path = entry["path"]
        if not path.endswith((".csv", ".parquet")) or "/" in path:
            continue
        obj: dict[str, Any] = {
            "@type": "cr:FileObject", "@id": path, "name": path, "contentUrl": path,
            "encodingFormat": "text/csv" if path.endswith(".csv") else "application/x-parquet",
            "sha256": entry["sha256"],
        }
        if path.endswith(".csv") and path != catalog.SAMPLE_SUBMISSION:
            obj["sameAs"] = path[: -len(".csv")] + ".parquet"
        distribution.append(obj)
    tables = {e["path"][: -len(".csv")]: e for e in files if e["path"].endswith(".csv") and "schema" in e}
    record_sets: list[dict[str, Any]] = [{
        "@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split",
        "key": {"@id": "splits/name"},
        "field": [{"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"},
                  {"@type": "cr:Field", "@id": "splits/rows", "name": "rows", "dataType": "sc:Integer"}],
        "data": [{"splits/name": s, "splits/rows": counts.get(s, 0)} for s in ("train", "test")],
    }]
    for name in ("records", "train", "test"):
        if name in tables:
            record_sets.append(_table_record_set(spec, name, tables[name], name if name != "records" else None))
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": spec.task_id,
        "description": f"{spec.title}. {spec.description}".strip(),
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "citeAs": f"{spec.title} ({spec.owner}), release {release}",
        "license": spec.license,
        "url": catalog.task_prefix(release, spec.task_id) + "/",
        "version": "1.0.0",
        "datePublished": published,
        "creator": {"@type": "sc:Organization", "name": spec.owner},
        "distribution": distribution,
        "recordSet": record_sets,
    }


def dataset_card(spec: TaskSpec, release: str, counts: dict[str, int], train_class_counts: dict[str, int],
                 tables: dict[str, dict[str, Any]]) -> str:
    """README.md for participants: the task, its columns, its counts, and how to submit.

    Class counts are of train only: counts over all splits would give the test labels' distribution.
    """
    lines = [
        f"# {spec.title}", "",
        f"`{spec.task_id}` · {spec.kind} · metric **{spec.metric}** · release `{release}`", "",
        spec.description or "", "",
        f"- owner: {spec.owner}", f"- licence: {spec.license}", "",
        "## Columns", "", "| column | modality | description |", "|---|---|---|",
        "| id | identifier | opaque id, stable within this release |",
    ]
    for original, column in spec.columns.items():
        lines.append(f"| {snake_case(original)} | {column.modality.value} | {column.description} |")
    if spec.kind == "classification":
        lines.append("| label | target | the class to predict (train only) |")
    else:
        lines += ["", "Pairs (`train`, `test`): `id`, `left_id`, `right_id` (ids in `records`), "
                  "and in train `label` (1: same entity, 0: different)."]
    lines += ["", "## Counts", "", "| table | rows |", "|---|---|"]
    lines += [f"| {name} | {info['rows']} |" for name, info in tables.items()]
    lines += ["", "| class | train rows |" if spec.kind == "classification" else "| label | train pairs |", "|---|---|"]
    lines += [f"| {label} | {n} |" for label, n in sorted(train_class_counts.items(), key=lambda kv: str(kv[0]))]
    if spec.columns_of(Modality.image):
        lines += ["", f"Image columns hold paths relative to this folder (`{catalog.image_file('<id>.png')}`)."]
    lines += [
        "", "## How to submit", "",
        "Upload a CSV (or Parquet) with columns `id,label` and one row for every id in `test.csv` to "
        f"`<submissions>/{catalog.submission_key('<your team>', spec.task_id, '<any name>.csv')}`. "
        f"`{catalog.SAMPLE_SUBMISSION}` shows the format. "
        + ("Labels are class names as in `train.csv`." if spec.kind == "classification"
           else "Labels are 1 (same entity) or 0."),
        "Part of the test set is scored on the public leaderboard while the challenge runs; "
        "the rest decides the final ranking.",
        "", f"`{catalog.MANIFEST}` lists every file with its SHA-256 and the SHA-256 of the hidden answer key.",
    ]
    return "\n".join(lines) + "\n"
