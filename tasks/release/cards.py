"""What a participant reads about a task: the dataset card and Croissant metadata."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from challenge.core import catalog
from challenge.core.config import ChallengeConfig, public_web_address
from challenge.core.inert import markdown_code, markdown_text
from challenge.core.metrics import METRICS
from challenge.core.task_spec import Modality, TaskSpec, snake_case

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

_MODALITY_TYPE = {Modality.text: "sc:Text", Modality.categorical: "sc:Text"}
IMAGES_RECORD_SET = "images"  # every published image, its path and content (image columns join it)
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp"}


def _feature_type(spec: TaskSpec, column: str, schema: dict[str, str]) -> str:
    original = next((c for c in spec.columns if snake_case(c) == column), None)
    if original and spec.columns[original].modality is not Modality.numeric:
        return _MODALITY_TYPE[spec.columns[original].modality]
    return "sc:Integer" if schema.get(column, "").startswith("int") else "sc:Float"


def _image_columns(spec: TaskSpec) -> set[str]:
    return {snake_case(c) for c in spec.columns_of(Modality.image)}


def _image_field(name: str, column: str, fields: list[dict[str, Any]]) -> None:
    """An image column as two fields: `<column>_path`, the path the table holds (it references the images
    record set), and `<column>`, the image itself (sc:ImageObject), joined on that path."""
    fields += [
        {"@type": "cr:Field", "@id": f"{name}/{column}_path", "name": f"{column}_path", "dataType": "sc:Text",
         "description": f"path of the `{column}` image, relative to the task folder",
         "source": {"fileObject": {"@id": f"{name}.parquet"}, "extract": {"column": column}},
         "references": {"field": {"@id": f"{IMAGES_RECORD_SET}/path"}}},
        {"@type": "cr:Field", "@id": f"{name}/{column}", "name": column, "dataType": "sc:ImageObject",
         "source": {"field": {"@id": f"{IMAGES_RECORD_SET}/content"}}},
    ]


def _images(files: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A FileSet per image format under images/, and the record set of every image (path, content)."""
    suffixes = sorted({"." + e["path"].rsplit(".", 1)[-1].lower() for e in files
                       if e["path"].startswith(f"{catalog.IMAGES}/") and "." in e["path"]})
    if not suffixes:
        return None
    sets = [{"@type": "cr:FileSet", "@id": f"image-files{suffix}", "name": f"image-files{suffix}",
             "encodingFormat": IMAGE_TYPES.get(suffix, "application/octet-stream"),
             "includes": catalog.image_file(f"*{suffix}")} for suffix in suffixes]
    sources = [{"fileSet": {"@id": fs["@id"]}} for fs in sets]
    one = len(sources) == 1

    def source(extract: dict[str, Any], transform: dict[str, Any] | None = None) -> Any:
        found = [{**src, "extract": extract, **({"transform": transform} if transform else {})} for src in sources]
        return found[0] if one else found

    record_set = {
        "@type": "cr:RecordSet", "@id": IMAGES_RECORD_SET, "name": IMAGES_RECORD_SET,
        "description": "every image of the task, by its path (the tables' image columns hold these paths)",
        "key": {"@id": f"{IMAGES_RECORD_SET}/path"},
        "field": [
            {"@type": "cr:Field", "@id": f"{IMAGES_RECORD_SET}/path", "name": "path", "dataType": "sc:Text",
             "source": source({"fileProperty": "filepath"}, {"regex": f"^(?:.*/)?({catalog.IMAGES}/[^/]+)$"})},
            {"@type": "cr:Field", "@id": f"{IMAGES_RECORD_SET}/content", "name": "content", "dataType": "sc:ImageObject",
             "source": source({"fileProperty": "content"})},
        ],
    }
    return sets, record_set


def _table_record_set(spec: TaskSpec, name: str, entry: dict[str, Any], split: str | None) -> dict[str, Any]:
    schema = {f["name"]: f["type"] for f in entry["schema"]}
    fields: list[dict[str, Any]] = []
    for column in schema:
        if column in _image_columns(spec):
            _image_field(name, column, fields)
            continue
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
    images = _images(files) if _image_columns(spec) else None
    if images is not None:
        distribution += images[0]
        record_sets.append(images[1])
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


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else None


def card_settings(config: ChallengeConfig) -> dict[str, Any]:
    """What a dataset card says besides the task's own data: the challenge's rules and places (a task is
    rebuilt when they change, so its card never states old rules as current)."""
    return {"title": config.title, "policy": config.policy.model_dump(mode="json"),
            "submissions": config.storage.submissions, "public": config.storage.public,
            "public_url": config.storage.public_url}


def _rules(spec: TaskSpec, config: ChallengeConfig, counts: dict[str, int]) -> list[str]:
    policy, unit = config.policy, "rows" if spec.kind == "classification" else "pairs"
    public, private = counts.get("test_public"), counts.get("test_private")
    share = round(policy.public_fraction * 100)
    closes = _utc(policy.closes_at)
    after = ("later uploads go to a post-challenge benchmark board, scored on the whole test set once the "
             "challenge is finalized" if policy.after_close == "benchmark"
             else "later uploads are rejected")
    page = public_web_address(config, catalog.PAGE) or f"{config.storage.public}/{catalog.PAGE}"
    metric = METRICS[spec.metric]
    rows = [
        ("deadline", f"{closes}; {after}" if closes else "no closing time is set yet: the organizers announce it"),
        *([("opens", f"{_utc(policy.opens_at)}; uploads before it are not scored")] if policy.opens_at else []),
        ("daily quota", f"{policy.max_submissions_per_day} scored submissions per team and task per UTC day (the count "
                        "resets at 00:00 UTC; invalid and rejected files do not count)"),
        ("file size", f"at most {policy.max_submission_mb:g} MB"),
        ("public share", f"{share}% of the test set ({public} {unit}) scores the public leaderboard while the challenge "
                         f"runs; the other {100 - share}% ({private} {unit}) decides the final ranking and stays hidden"),
        ("metric", f"`{spec.metric}`: {metric.what} (higher is better)"),
        ("leaderboard", markdown_text(page)),
        ("upload to", markdown_code(f"{config.storage.submissions}/<your team>/{spec.task_id}/<any name>.csv")),
    ]
    return ["| rule | for this task |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def dataset_card(spec: TaskSpec, release: str, counts: dict[str, int], train_class_counts: dict[str, int],
                 tables: dict[str, dict[str, Any]], config: ChallengeConfig) -> str:
    """README.md for participants: the task, the rules that apply to it, how to download, submit, read the
    feedback and pick the final submissions, its columns and counts.

    Class counts are of train only: counts over all splits would give the test labels' distribution.
    Every text from task.yaml is inert markdown (no HTML, no link, no table break).
    """
    task, policy = spec.task_id, config.policy
    lines = [
        f"# {markdown_text(spec.title)}", "",
        f"`{task}` · {spec.kind} · metric **{spec.metric}** · release `{release}` · {markdown_text(config.title)}", "",
        markdown_text(spec.description or ""), "",
        f"- owner: {markdown_text(spec.owner)}", f"- licence: {markdown_text(spec.license)}", "",
        "## Rules", "", *_rules(spec, config, counts), "",
        "## Get the data", "",
        "With the `challenge` command and your team's `participant.yaml` (from the organizers):", "",
        "```sh", f"challenge download --task {task}", "```", "",
        f"It fetches this folder and checks every file against the SHA-256 in `{catalog.MANIFEST}`.", "",
        "## Submit", "",
        "```sh", f'challenge submit predictions.csv --task {task} --message "what you tried"', "```", "",
        "It checks the file with the scorer's own checks before uploading (an invalid file is refused and not "
        "uploaded), then says how many submissions you have left today and when the next scoring run is due. "
        "The message is kept with the result and shown next to your score on the leaderboard.", "",
        f"The file: columns `id,label`, one row for every id in `test.csv`; `{catalog.SAMPLE_SUBMISSION}` shows the "
        "format. " + ("Labels are class names as in `train.csv`. Ids are text such as `0003`; if your tool read "
                      "them as numbers (pandas and polars turn `0003` into 3), write them back as it gives them: `3` "
                      "or `3.0` is the id `0003`, so `df.to_csv(path, index=False)` of what you read is valid. Only "
                      "digits are padded, to the width of the published ids: `+3`, `3.5` or a longer number is not "
                      "an id, and `3` with `0003` in one file is the same id twice. When the classes are integers, "
                      "a label `3.0` is the class `3`."
                      if spec.kind == "classification"
                      else "Ids are the pair ids of `test.csv`; labels are 1 (same entity) or 0."),
        "A Parquet file with the same two columns works too. Without the command, upload the file to "
        f"{markdown_code(f'{config.storage.submissions}/<your team>/{task}/<any name>.csv')} yourself.", "",
        "## Feedback", "",
        f"Each scoring run (every few minutes) answers every new upload with `<name>.csv{catalog.FEEDBACK_SUFFIX}` next "
        "to it: `scored` with the public score, or what to fix, and your quota left that day. "
        f"`<your team>/{task}/{catalog.HISTORY}` lists all your submissions; "
        f"`challenge submissions --task {task} --wait` waits for the answer and prints them.", "",
        "## Final ranking", "",
        f"Name up to {policy.final_picks} of your scored submissions in `<your team>/{task}/{catalog.FINAL_CHOICE}`, one "
        f"file name per line; `{catalog.FINAL_CHOICE}{catalog.FEEDBACK_SUFFIX}` says whether they were accepted. Your "
        "final score on this task is the best private score among them; without a FINAL file, the private score of "
        "your best public submission. The track's ranking is the mean over its tasks, a task without a scored "
        "submission counting as 0.", "",
        "## Columns", "", "| column | modality | description |", "|---|---|---|",
        "| `id` | identifier | opaque id, stable within this release |",
    ]
    for original, column in spec.columns.items():
        lines.append(f"| `{snake_case(original)}` | {column.modality.value} | {markdown_text(column.description or '')} |")
    if spec.kind == "classification":
        lines.append("| `label` | target | the class to predict (train only) |")
    else:
        lines += ["", "Pairs (`train`, `test`): `id`, `left_id`, `right_id` (ids in `records`), "
                  "and in train `label` (1: same entity, 0: different)."]
    lines += ["", "## Counts", "", "| table | rows |", "|---|---|"]
    lines += [f"| {name} | {info['rows']} |" for name, info in tables.items()]
    lines += ["", "| class | train rows |" if spec.kind == "classification" else "| label | train pairs |", "|---|---|"]
    lines += [f"| {markdown_text(label)} | {n} |" for label, n in sorted(train_class_counts.items(), key=lambda kv: str(kv[0]))]
    if spec.columns_of(Modality.image):
        lines += ["", f"Image columns hold paths relative to this folder (`{catalog.image_file('<id>.png')}`)."]
    lines += [
        "", "## Verifying", "",
        f"`{catalog.MANIFEST}` lists every file with its SHA-256, and the SHA-256 of the hidden answer key: "
        "anyone can check later that the answers never changed. A corrected answer key is announced with its "
        f"new SHA-256 in the public corrections trail, `{catalog.corrections_key('<release>', task)}` for the release "
        "in use.",
    ]
    return "\n".join(lines) + "\n"
