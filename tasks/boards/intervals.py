"""Put the bootstrap intervals (tasks/boards/bootstrap.py) on a board: each entry's `ci95`, `rank_ci95` and
`tied_with_above`, on task and track boards, and the method in the board's `intervals`.

The resamples use the part of the test set the board ranks by: public before finalize, private on the
final board and the whole test set on the post-challenge board, so nothing private leaks through a live
board's intervals. Each
ranked file's labels come from `<private>/predictions/` (written when it was scored; for a file scored
before they were kept, computed once from the upload). A task's intervals are recomputed only when its
entries changed (which submission, which answer key): `<private>/cache/intervals.json` keeps them, and
the resampled scores behind them (for the track boards) are in `cache/bootstrap/`.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.errors import StorageError
from challenge.core.logs import step_logger
from challenge.core.records import Board, BoardIntervals, Entry, ResultRecord
from challenge.core.run_context import RunContext
from challenge.core.storage import TRANSFER_THREADS, Storage
from challenge.tasks.boards.bootstrap import LEVEL, METHOD, RESAMPLES, SEED, Uncertainty, bootstrap_scores, summarize, task_seed
from challenge.tasks.release.latest import ReleasedTask
from challenge.tasks.scoring.score import WHOLE, AnswerKey, ParticipantVisibleError, load_answer_key, predict, write_predictions
from challenge.tasks.scoring.submissions import Submission

log = step_logger(__name__)


def _codes(values: pa.Array, classes: pa.Array) -> np.ndarray:
    """Labels (plain or dictionary-encoded) as codes into `classes` (-1: not a class)."""
    if pa.types.is_dictionary(values.type):
        mapping = pc.fill_null(pc.index_in(values.dictionary.cast(pa.string()), value_set=classes), -1)
        return mapping.to_numpy(zero_copy_only=False).astype(np.int64)[values.indices.to_numpy(zero_copy_only=False)]
    return pc.fill_null(pc.index_in(values.cast(pa.string()), value_set=classes), -1).to_numpy(zero_copy_only=False)


def read_predictions(private: Storage, submissions: Storage, record: ResultRecord, key: AnswerKey) -> pa.Array | None:
    """A scored file's labels in answer-key order; computed from the upload (and kept) when they were not
    kept at scoring; None when the upload is gone, replaced, or no longer valid."""
    sub = Submission.from_record(record)
    stored = catalog.predictions_key(sub.team, sub.task_id, sub.submission_id)
    if private.exists(stored):
        table = pq.read_table(io.BytesIO(private.read_bytes(stored)))
        if table.num_rows == len(key.ids):
            return table["label"].combine_chunks()
    try:
        data = submissions.read_limited(sub.key, sub.size, sub.etag)
        predicted = predict(sub, data, key)
    except (StorageError, ParticipantVisibleError) as exc:
        log.warning("%s: no interval: its labels cannot be read again (%s)", sub.key, exc)
        return None
    write_predictions(private, sub, predicted)
    return predicted


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _task_samples(run: RunContext, release: str, task: ReleasedTask, entries: list[Entry],
                  part: str) -> tuple[np.ndarray, list[bool]]:
    """T × B resampled scores of the entries' submissions on `part` (a row of NaN for an entry whose labels
    cannot be read), and which rows are real."""
    private, submissions = run.private, run.submissions
    key = load_answer_key(run.public, private, release, task.task_id)
    mask = key.public.to_numpy(zero_copy_only=False)
    if part == "private":
        mask = ~mask
    elif part == WHOLE:
        mask = np.ones(len(mask), dtype=bool)
    truth = _codes(key.labels, key.classes)[mask]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        predictions = list(pool.map(lambda e: read_predictions(private, submissions, e["_record"], key), entries))
    usable = [p is not None for p in predictions]
    codes = np.stack([_codes(p, key.classes)[mask] for p in predictions if p is not None]) if any(usable) else \
        np.zeros((0, len(truth)), dtype=np.int64)
    codes = np.where(codes < 0, 0, codes)  # a valid file's labels are classes; guard the indicator matrix
    scored = bootstrap_scores(truth, codes, len(key.classes), task.metric, RESAMPLES, task_seed(task.task_id))
    samples = np.full((len(entries), RESAMPLES), np.nan)
    samples[np.flatnonzero(usable)] = scored
    return samples, usable


def _annotate(entries: list[Entry], samples: np.ndarray, usable: list[bool]) -> None:
    """ci95, rank_ci95 and tied_with_above on each entry (None where its labels could not be read)."""
    rows = [i for i, ok in enumerate(usable) if ok]
    found = summarize(samples[rows], [entries[i]["rank"] is not None for i in rows]) if rows else []
    by_row: dict[int, Uncertainty] = dict(zip(rows, found))
    for i, entry in enumerate(entries):
        u = by_row.get(i)
        entry["ci95"] = list(u.ci95) if u else None
        entry["rank_ci95"] = list(u.rank_ci95) if u and u.rank_ci95 else None
        entry["tied_with_above"] = bool(u and u.tied_with_above)


def add_intervals(board: Board, released: dict[str, ReleasedTask], run: RunContext, name: str = "live") -> None:
    """Annotate every task and track entry of `board` (built by build_leaderboard, entries still holding
    `_record`) with its intervals; `name`: which board (live, final, benchmark), for the cache."""
    part = WHOLE if board.get("benchmark") else "private" if board["final"] else "public"
    board["intervals"] = {"method": METHOD, "resamples": RESAMPLES, "seed": SEED, "level": LEVEL, "part": part,
                          "per_task_seed": "the seed and the task id, hashed (SHA-256)"}
    private = run.private
    cache = catalog.read_cache(private, catalog.INTERVALS_CACHE)
    mine = cache.get(name) if isinstance(cache.get(name), dict) else {}
    fresh: BoardIntervals = {"tasks": {}, "tracks": {}}
    samples: dict[str, dict[str, np.ndarray]] = {}
    changed = False
    for task_id, info in board["tasks"].items():
        task = released[task_id]
        entries = info["entries"]
        digest = _digest(part, task.answers_sha256, RESAMPLES, SEED, LEVEL,
                         [(e["team"], e["_record"]["submission_id"], e["rank"] is None) for e in entries])
        hit = (mine.get("tasks") or {}).get(task_id)
        if isinstance(hit, dict) and hit.get("digest") == digest and len(hit.get("entries", [])) == len(entries):
            for entry, saved in zip(entries, hit["entries"]):
                entry.update(saved)
            fresh["tasks"][task_id] = hit
            continue
        rows, usable = _task_samples(run, board["release"], task, entries, part)
        _annotate(entries, rows, usable)
        out = io.BytesIO()
        np.savez_compressed(out, teams=np.array([e["team"] for e in entries]), samples=rows)
        private.write_bytes(catalog.bootstrap_samples_key(name, task_id), out.getvalue())
        samples[task_id] = {e["team"]: rows[i] for i, e in enumerate(entries)}
        fresh["tasks"][task_id] = {"digest": digest, "entries": [
            {k: e[k] for k in ("ci95", "rank_ci95", "tied_with_above")} for e in entries]}
        changed = True
    for track, info in board["tracks"].items():
        digest = _digest([fresh["tasks"][t]["digest"] for t in info["tasks"]], [e["team"] for e in info["entries"]])
        hit = (mine.get("tracks") or {}).get(track)
        if isinstance(hit, dict) and hit.get("digest") == digest and len(hit.get("entries", [])) == len(info["entries"]):
            for entry, saved in zip(info["entries"], hit["entries"]):
                entry.update(saved)
            fresh["tracks"][track] = hit
            continue
        per_task = {}
        for t in info["tasks"]:
            per_task[t] = samples.get(t) or _cached_samples(private, name, t)
            entries = board["tasks"][t]["entries"]
            if entries and set(per_task[t]) != {e["team"] for e in entries}:  # the cached scores are gone
                rows_t, _ = _task_samples(run, board["release"], released[t], entries, part)
                per_task[t] = {e["team"]: rows_t[i] for i, e in enumerate(entries)}
        rows = np.stack([np.mean([per_task[t].get(e["team"], np.zeros(RESAMPLES)) for t in info["tasks"]], axis=0)
                         for e in info["entries"]]) if info["entries"] else np.zeros((0, RESAMPLES))
        usable = [bool(np.isfinite(r).all()) for r in rows]
        _annotate(info["entries"], rows, usable)
        fresh["tracks"][track] = {"digest": digest, "entries": [
            {k: e[k] for k in ("ci95", "rank_ci95", "tied_with_above")} for e in info["entries"]]}
        changed = True
    if changed or mine != fresh:
        cache[name] = fresh
        catalog.write_json(private, catalog.INTERVALS_CACHE, cache, indent=None)


def _cached_samples(private: Storage, name: str, task_id: str) -> dict[str, np.ndarray]:
    """team → resampled scores of one task, from the cache (empty when it cannot be read)."""
    try:
        with np.load(io.BytesIO(private.read_bytes(catalog.bootstrap_samples_key(name, task_id)))) as saved:
            return dict(zip(saved["teams"].tolist(), saved["samples"]))
    except (StorageError, OSError, ValueError, KeyError):
        return {}
