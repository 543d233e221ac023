"""The folder an algorithm reads (IN): exactly the task folder a participant downloads (`challenge download`:
tables, images, sample submission, card, manifest), plus task.json, which says in one place what the
manifest and the tables say (kind, columns and their modalities, metric, label classes, the files) and the
bounds this run has. See docs/contract.md."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TypedDict

import pyarrow.compute as pc
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import Manifest
from challenge.tasks.algorithms.sandbox import SandboxLimits

TASK_JSON = "task.json"
PREDICTIONS = "predictions.csv"
CONTRACT_VERSION = 1


class ColumnDescription(TypedDict):
    modality: str  # numeric, categorical, text or image
    description: str | None


class RunBudget(TypedDict):
    """What the run may use (challenge.yaml `algorithms:`)."""

    seconds: float
    cpu_seconds: float
    memory_mb: int
    processes: int
    output_mb: int
    threads: int


class TaskDescription(TypedDict):
    """task.json (docs/contract.md §11)."""

    contract: int
    task_id: str
    release: str
    kind: str
    metric: str
    columns: dict[str, ColumnDescription]
    labels: list[str]
    files: dict[str, str]
    output: str
    budget: RunBudget


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a downloaded task folder."""
    path = folder / catalog.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} is not a task folder as `challenge download` writes it "
                                f"(<release>/<task>/ with {catalog.MANIFEST}, the tables and the sample submission)")
    return catalog.parse_record(Manifest, path.read_bytes(), str(path))


def label_classes(folder: Path, manifest: Manifest) -> list[str]:
    """The labels a prediction may hold: the classes seen in train (classification), 0 and 1 (matching)."""
    if manifest.kind != "classification":
        return ["0", "1"]
    labels = pq.read_table(folder / catalog.table_file("train"), columns=["label"])["label"]
    return [str(v) for v in pc.unique(labels.cast("string")).sort().to_pylist()]


def task_description(folder: Path, limits: SandboxLimits) -> TaskDescription:
    """task.json: what the algorithm needs to know of the task and of its run."""
    manifest = read_manifest(folder)
    return {
        "contract": CONTRACT_VERSION,
        "task_id": manifest.task_id,
        "release": manifest.release,
        "kind": manifest.kind,
        "metric": manifest.metric,
        "columns": {name: {"modality": info.modality, "description": info.description}
                    for name, info in manifest.columns.items()},
        "labels": label_classes(folder, manifest),
        "files": {**{name: catalog.table_file(name) for name in catalog.RELEASED_TABLES[manifest.kind]},
                  "sample_submission": catalog.SAMPLE_SUBMISSION},
        "output": PREDICTIONS,
        "budget": {"seconds": limits.seconds, "cpu_seconds": limits.cpu_seconds,
                   "memory_mb": limits.memory_bytes >> 20, "processes": limits.processes,
                   "output_mb": limits.output_bytes >> 20, "threads": limits.threads},
    }


def prepare_input(task_folder: Path, into: Path, limits: SandboxLimits) -> tuple[Path, TaskDescription]:
    """IN for one run under `into`: the task folder's files (hard links where the filesystem allows, else
    copies: the sandbox shows them read-only) and its task.json; and what task.json says."""
    description = task_description(task_folder, limits)
    target = into / "input"
    for root, _, names in os.walk(task_folder):
        for name in names:
            source = Path(root) / name
            if source.is_symlink() or name.startswith(".part-"):
                continue
            destination = target / source.relative_to(task_folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.stat().st_mode & 0o004:
                try:
                    os.link(source, destination)
                    continue
                except OSError:
                    pass
            shutil.copyfile(source, destination)
            destination.chmod(0o644)
    (target / TASK_JSON).write_bytes(catalog.json_bytes(description))
    for root, dirs, names in os.walk(target):  # readable by the run's own user id
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    target.chmod(0o755)
    return target, description
