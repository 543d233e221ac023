"""Flow: correct a released task's answer key, with a trail, and rescore what it changes (issue 13)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger

from challenge.core.config import load_config
from challenge.core.errors import ChallengeError
from challenge.core.run_context import RunContext
from challenge.core.scoring_slot import scoring_slot
from challenge.flows.run_names import run_name
from challenge.flows.score_submissions import ScoringRun, score_new
from challenge.tasks.corrections.apply import Correction, CorrectionsFile, correct_answer_key
from challenge.tasks.corrections.file_checks import MAX_CORRECTION_BYTES, CorrectionError
from challenge.tasks.release.latest import current_release


@dataclass
class CorrectionRun:
    """The correction made, and the scoring run that rescored the results it changed."""

    correction: Correction
    scoring: ScoringRun


def read_corrections_file(file: str) -> CorrectionsFile:
    """The organizer's corrections file (refused unread when too large)."""
    path = Path(file)
    if not path.is_file():
        raise CorrectionError(f"{file}: no such file; pass the corrections CSV (columns id,label) with --file")
    if path.stat().st_size > MAX_CORRECTION_BYTES:
        raise CorrectionError(f"{file}: {path.stat().st_size / 1048576:.0f} MB is more than a corrections file "
                              f"needs (limit {MAX_CORRECTION_BYTES // 1048576} MB); list only the labels to fix")
    return CorrectionsFile(path.name, path.read_bytes())


@flow(name="correct-answers", flow_run_name=run_name("correct", lambda p: p.get("task")))
def correct_answers(task: str, file: str, config_path: str | None = None) -> CorrectionRun:
    """Fix labels of a task's answer key in the current release: check the file, write a new key version
    (the old one kept), publish its corrections trail (`corrections/<release>/<task>.json` in public), fix the
    staged data, rescore every affected result.

    Args:
        task: The task id whose answer key is corrected.
        file: A CSV with columns id,label: the published test ids and their right labels.
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
    """
    config = load_config(config_path)
    upload = read_corrections_file(file)
    run = RunContext(config)
    public, private = run.public, run.private
    logger = get_run_logger()
    with scoring_slot(run):  # no scoring run reads the key while it changes
        latest = current_release(public)
        if task not in latest.tasks:
            raise ChallengeError(f"unknown task id {task!r}: the current release {latest.release} has {', '.join(latest.tasks)}")
        correction = correct_answer_key(public, private, latest.release, task, upload, datetime.now(timezone.utc))
        logger.info("%s: answer key version %d in use (%d label(s) changed, SHA-256 %s); %s", task, correction.version,
                    correction.labels_changed, correction.answers_sha256[:12], correction.staged)
        scoring = score_new(run)  # rescores the results scored with the earlier version
    logger.info("%s: %d result(s) rescored, %d superseded (their upload is gone)", task, scoring.corrected, scoring.superseded)
    return CorrectionRun(correction, scoring)
