"""Run an algorithm (a folder or its archive) on one task folder in the sandbox and check what it wrote with
the scorer's own checks: what `challenge algorithm-check` prints, and what a matrix run records before it
scores."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.config import AlgorithmSettings
from challenge.core.errors import AlgorithmRefused
from challenge.tasks.algorithms.archive import MAIN, ArchiveLimits, unpack_archive
from challenge.tasks.algorithms.sandbox import SandboxLimits, SandboxRun, run_in_sandbox
from challenge.tasks.algorithms.task_input import PREDICTIONS, prepare_input
from challenge.tasks.scoring.score import checked_labels
from challenge.tasks.scoring.submissions import IdIndex, ParticipantVisibleError


@dataclass(frozen=True)
class AlgorithmCheck:
    """One run's outcome: `status` is the sandbox's ending, or "valid" / "invalid output" once it finished."""

    task_id: str
    status: str
    message: str
    run: SandboxRun
    rows: int = 0
    predictions: bytes = b""  # predictions.csv as written, when valid


def unpacked_code(algorithm: Path, into: Path, settings: AlgorithmSettings) -> Path:
    """The algorithm's folder: `algorithm` itself, or its archive unpacked (safely) under `into`."""
    code = into / "algorithm"
    if algorithm.is_dir():  # copied, readable by the run's user id, without links or version-control folders
        if not (algorithm / MAIN).is_file():
            raise AlgorithmRefused(f"{algorithm} has no {MAIN}: the runner starts `python {MAIN} --input IN --output OUT` "
                                   "(docs/contract.md)")
        shutil.copytree(algorithm, code, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv"))
        for path in [code, *code.rglob("*")]:
            if path.is_symlink():
                path.unlink()
            else:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return code
    unpack_archive(algorithm, code, ArchiveLimits.of(settings))
    return code


def check_predictions(output: Path, task_folder: Path, labels: list[str]) -> tuple[str, str, int]:
    """(status, message, rows) of OUT/predictions.csv against the task's test ids and `labels` (task.json's
    classes); its size is bounded by the run's file-size limit."""
    written = output / PREDICTIONS
    if written.is_symlink() or (written.exists() and not written.is_file()):  # read here, outside the sandbox
        return "invalid output", f"its {PREDICTIONS} is a link, a folder or a pipe: write a plain file", 0
    if not written.is_file():
        others = sorted(p.name for p in output.iterdir())[:5]
        return ("invalid output", f"it wrote no {PREDICTIONS} into OUT" + (f" (it wrote {', '.join(others)})" if others else ""),
                0)
    test_ids = pq.read_table(task_folder / catalog.table_file("test"), columns=["id"])["id"]
    index = IdIndex(test_ids.cast(pa.string()).combine_chunks())
    try:
        predicted = checked_labels(written.read_bytes(), PREDICTIONS, index, pa.array(labels, pa.string()))
    except ParticipantVisibleError as problem:
        return "invalid output", str(problem), 0
    return "valid", f"{len(predicted)} predictions in the expected format: the scorer accepts them", len(predicted)


def check_algorithm(algorithm: Path, task_folder: Path, settings: AlgorithmSettings) -> AlgorithmCheck:
    """Run `algorithm` (folder or .zip) on `task_folder` in the sandbox, then check its predictions."""
    limits = SandboxLimits.of(settings)
    with tempfile.TemporaryDirectory(prefix="challenge-algorithm-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)
        code = unpacked_code(algorithm, work_dir, settings)
        input_dir, task = prepare_input(task_folder, work_dir, limits)
        task_id = task["task_id"]
        output = work_dir / "output"
        output.mkdir()
        run = run_in_sandbox(code, input_dir, output, limits)
        if run.status != "finished":
            return AlgorithmCheck(task_id, run.status, run.why, run)
        status, message, rows = check_predictions(output, task_folder, task["labels"])
        predictions = (output / PREDICTIONS).read_bytes() if status == "valid" else b""
        return AlgorithmCheck(task_id, status, message, run, rows, predictions)
