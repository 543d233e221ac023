"""The quality gate of one drop (SPEC §6): read its task.yaml and tables, standardize them, run the
checks, write its report under `<private>/reports/<task_id>/<contributor>/<run-time>/` and, when it
passes, stage it under `<private>/staged/<task_id>/<version>/` (then point `current.json` at it). A drop
whose fingerprint (content + rules) is unchanged, and whose task id has the same owner, is not gated again.

One report tells everything: only a drop that cannot be read at all (an entry that is not a regular
file, a task.yaml missing or invalid) stops the gate early. Past that, a failure (a missing column, a
task id that another contributor owns, a file that does not parse or is over a read limit) is recorded
and every check that can still run does, on the columns there; each other check is reported as skipped,
saying why. gate_drop runs in this process; tasks/intake/gate_process.py runs it within the drop's time budget.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import TASK_FILE, StagedPointer
from challenge.core.errors import ChallengeError, ConfigError, DataReadError
from challenge.core.records import GateNote
from challenge.core.run_context import RunContext
from challenge.core.storage import LocalStorage, Storage, download_many, upload_tree
from challenge.core.task_spec import TASK_ID_PATTERN, Modality, TaskSpec, parse_task_spec
from challenge.core.yamlfile import read_yaml_text
from challenge.expectations.checks import CheckResult, failed, passed
from challenge.tasks.intake.drops import Claimant, Drop, DropOutcome, Ownership, contributor_folder, report_folder, task_owner
from challenge.tasks.intake.gate_reports import GateReport, one_line, render_markdown
from challenge.tasks.intake.quality import Absent, rules_fingerprint, run_quality_gate
from challenge.tasks.intake.read_limits import LimitExceeded, ReadLimits
from challenge.tasks.intake.read_tables import DataFile, read_data_file
from challenge.tasks.intake.staged import content_digest, local_version_digests, stored_content_digest
from challenge.tasks.intake.standardize import check_name_clashes, standardize_pairs, standardize_records

Progress = Callable[[str, list[CheckResult]], None]  # the step the gate starts, and the checks so far


def _read_json(storage: Storage, key: str) -> Any:
    if not storage.exists(key):
        return None
    return json.loads(storage.read_bytes(key))


class _GateStopped(Exception):
    """The drop cannot be checked further; the checks so far explain why."""


@dataclass(frozen=True)
class DropRun:
    """What one drop's gate is given, made once when the drop is taken (and sent to the gate's process whole):
    the drop, the run's configuration and locations, its time (the report's folder) and who owns the drop's
    task id."""

    drop: Drop
    context: RunContext
    run_time: str
    ownership: Ownership


class DropGate:
    """Takes one drop through the gate. Public entry point: gate_drop()."""

    def __init__(self, run: DropRun, intake: Storage, private: Storage, workdir: Path, report: GateReport,
                 progress: Progress | None = None):
        self.drop, self.intake, self.private, self.workdir, self.report = run.drop, intake, private, workdir, report
        self.limits, self.progress = ReadLimits.from_settings(run.context.config.intake), progress

    def step(self, name: str) -> None:
        """Say which step starts (a gate stopped at its time budget tells it, with the checks done so far)."""
        if self.progress is not None:
            self.progress(name, list(self.report.checks))

    def add(self, checks: list[CheckResult] | CheckResult, stop: bool = False) -> None:
        """Record checks; with `stop`, stop the gate when one of them blocks (nothing further can be read)."""
        checks = checks if isinstance(checks, list) else [checks]
        self.report.checks.extend(checks)
        if stop and any(c.blocking for c in checks):
            raise _GateStopped

    def check_regular_files(self) -> None:
        """Stop at once when an entry of the drop is not a regular file (a symbolic link could point at
        another task's hidden answers; a FIFO would block): nothing of the drop is read."""
        bad = [f"{self.drop.relative(i)}: {i.problem}" for i in self.drop.files if i.problem]
        if bad:
            self.add(failed("regular_files", "drop", count=len(bad), examples=bad[:5], source="read",
                            hint=f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not regular files "
                                 "(symbolic links, named pipes, devices, unusable names) and are never read: "
                                 "put the files themselves in the drop, with plain names"), stop=True)

    def download(self) -> Path:
        """A local folder holding the drop: read in place on the local backend, else downloaded."""
        if isinstance(self.intake, LocalStorage):
            return Path(self.intake.uri_for(self.drop.prefix.rstrip("/")))
        drop_dir = self.workdir / "drop"
        download_many(self.intake, [(info.key, drop_dir / self.drop.relative(info)) for info in self.drop.files])
        return drop_dir

    def check_owner(self, ownership: Ownership) -> None:
        """Another contributor's task id fails this drop alone (naming the owner and what to do); the owner's
        drop is told of the others, without failing for them."""
        folder = self.drop.folder
        if ownership.owner != self.drop.contributor:
            self.add(failed("task_id_owner", TASK_FILE, column="task_id", examples=[ownership.owner], source="read",
                            hint=ownership.refusal(folder)))
        elif ownership.rivals:
            self.add(failed("task_id_owner", TASK_FILE, column="task_id", examples=list(ownership.rivals),
                            source="read", severity="warning", hint=ownership.to_owner(folder)))
        else:
            self.add(passed("task_id_owner", TASK_FILE, "task_id", source="read"))

    def load_spec(self, drop_dir: Path) -> TaskSpec:
        name = f"{self.drop.name}/{TASK_FILE}"
        path = drop_dir / TASK_FILE
        if not path.is_file():
            self.add(failed("task_yaml_present", TASK_FILE, source="read",
                            hint=f"{name} is missing; add a task.yaml describing the dataset (see README)"), stop=True)
        try:
            spec = parse_task_spec(read_yaml_text(path, name), name)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            self.add(failed("task_yaml_valid", TASK_FILE, count=len(lines), examples=lines, source="read",
                            hint=lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)),
                     stop=True)
        self.add(passed("task_yaml_valid", TASK_FILE, source="read"))
        self.report.task_id = spec.task_id
        if spec.task_id != self.drop.folder:
            self.add(failed("task_id_matches_folder", TASK_FILE, column="task_id", examples=[spec.task_id],
                            hint=f"task_id '{spec.task_id}' differs from the folder name '{self.drop.folder}'; make them equal"))
        self.add(check_name_clashes(spec))
        return spec

    def read_tables(self, spec: TaskSpec, drop_dir: Path) -> dict[str, DataFile]:
        """The data files that can be read (their declared columns, within the read limits); each other one is a
        failed check (its table's checks are skipped)."""
        string_columns = [spec.id_column, *(c for c, s in spec.columns.items() if s.modality is not Modality.numeric)]
        if spec.label_column and spec.kind == "classification":
            string_columns.append(spec.label_column)
        pairs = [spec.pair_columns.left, spec.pair_columns.right]
        records = [spec.id_column, *spec.columns] + ([spec.label_column or ""] if spec.kind == "classification" else [])
        tables, problems = {}, []
        for table_name, file_name in spec.data_files().items():
            is_pairs = table_name == "pairs"
            try:
                tables[table_name] = read_data_file(
                    drop_dir / file_name, f"{self.drop.name}/{file_name}", pairs if is_pairs else string_columns,
                    [*pairs, spec.pairs_label] if is_pairs else records, self.limits, None if is_pairs else spec.id_column,
                )
            except LimitExceeded as exc:
                problems.append(failed("data_file_within_limits", table_name, column=exc.column, examples=[file_name],
                                       source="read", hint=str(exc)))
            except DataReadError as exc:
                problems.append(failed("data_file_readable", table_name, examples=[file_name], source="read", hint=str(exc)))
        self.add(problems or [passed("data_file_readable", t, source="read") for t in tables])
        return tables

    def standardize(self, spec: TaskSpec, raw: dict[str, DataFile]) -> tuple[dict[str, pa.Table], Absent]:
        """The standardized tables, with the columns they have, and what the checks will miss."""
        files = spec.data_files()
        results = {
            name: (standardize_pairs(found.table, spec, files[name], found.columns) if name == "pairs"
                   else standardize_records(found.table, spec, name, files[name], found.columns))
            for name, found in raw.items()
        }
        self.add([c for r in results.values() for c in r.checks])
        unread = {name: "could not be read" for name in files if name not in raw}
        unread.update({name: "has none of its declared columns" for name, r in results.items() if r.table is None})
        absent = Absent(spec, unread, {name: r.absent for name, r in results.items()})
        return {name: r.table for name, r in results.items() if r.table is not None}, absent

    def stage(self, spec: TaskSpec, drop_dir: Path, fingerprint: str, out: Path) -> str:
        """Upload the standardized files in `out` under a new version folder, then point current.json at it.
        When the task's current version, staged from this contributor, holds the same content (a drop gated
        again because the rules changed), it stays current: its releases' build inputs stay as they are."""
        images_dir = drop_dir / spec.images if spec.images else None
        content = content_digest(local_version_digests(out, images_dir), spec.model_dump(mode="json"))
        current = self._current_pointer(spec.task_id)
        if (current is not None and current.contributor == self.drop.contributor
                and stored_content_digest(self.private, current) == content):
            return self.private.uri_for(current.prefix)
        version_prefix = catalog.staged_version_prefix(spec.task_id, fingerprint[:16])
        if images_dir is not None and images_dir.is_dir():
            upload_tree(self.private, images_dir, catalog.staged_file_key(version_prefix, catalog.IMAGES))
        meta = {
            "task_id": spec.task_id,
            "contributor": self.drop.contributor,
            "kind": spec.kind,
            "fingerprint": fingerprint,
            "drop": self.intake.uri_for(self.drop.prefix.rstrip("/")),
            "staged_at": datetime.now(timezone.utc).isoformat(),
            "report": self.report.run_time,
            "tables": self.report.tables,
            "spec": spec.model_dump(mode="json"),
            "content_sha256": content,
        }
        (out / catalog.STAGED_META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        upload_tree(self.private, out, version_prefix)
        pointer = StagedPointer(task_id=spec.task_id, kind=spec.kind, contributor=self.drop.contributor,
                                version=fingerprint[:16], prefix=version_prefix, fingerprint=fingerprint,
                                staged_at=meta["staged_at"])
        catalog.write_record(self.private, catalog.staged_pointer_key(spec.task_id), pointer)
        return self.private.uri_for(version_prefix)

    def _current_pointer(self, task_id: str) -> StagedPointer | None:
        try:
            return catalog.read_staged_pointer(self.private, task_id)
        except ChallengeError:  # a damaged pointer: staging a new version replaces it
            return None


def write_parquet_files(tables: dict[str, pa.Table], out: Path) -> None:
    """<out>/<table>.parquet for each standardized table."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / catalog.table_file(name), compression="zstd", row_group_size=256_000)


def drop_ownership(drop: Drop, context: RunContext, clash: list[Claimant] | None) -> Ownership:
    """Who owns the drop's task id now (tasks/intake/drops.py, task_owner): challenge.yaml's owners, the staged
    pointer's contributor, else the earliest of this run's drops of it (`clash`)."""
    staged = None
    if re.match(TASK_ID_PATTERN, drop.folder):
        try:
            staged = (_read_json(context.private, catalog.staged_pointer_key(drop.folder)) or {}).get("contributor")
        except ValueError:  # a damaged pointer: no owner from it
            staged = None
    return task_owner(drop.folder, drop.contributor, context.config.owners, staged, clash)


def _latest_key(drop: Drop) -> str:
    return catalog.latest_report_key(report_folder(drop.folder), drop.contributor)


def reusable_outcome(drop: Drop, context: RunContext, ownership: Ownership, force: bool = False) -> DropOutcome | None:
    """The outcome of the drop's last gate when nothing it depended on changed: the same files and rules,
    the same owner of its task id and, for a failure, the same intake limits (a drop refused under one
    budget or limit may pass a larger one). Never after a stop that may have been the machine's fault."""
    if force:
        return None
    try:
        previous = _read_json(context.private, _latest_key(drop))
    except ValueError:  # a damaged cache note: gate the drop again, and rewrite it
        return None
    if not previous or previous.get("fingerprint") != drop.fingerprint(rules_fingerprint()) or previous.get("retry"):
        return None
    owner = previous.get("owner", None if previous.get("ownership_failed") else drop.contributor)  # older notes
    outcome = previous.get("outcome") or {}
    same_limits = previous.get("intake") == context.config.intake.model_dump(mode="json")
    if owner != ownership.owner or (outcome.get("verdict") != "pass" and not same_limits):
        return None
    if owner != drop.contributor and previous.get("owner_reason") != ownership.reason:
        return None  # the refusal says why the task id is another's: say it anew (e.g. now staged)
    return DropOutcome(**{**outcome, "status": "unchanged"})


def new_report(run: DropRun) -> tuple[GateReport, str]:
    """An empty report of the drop and the folder it goes to (the task's and the contributor's own)."""
    drop = run.drop
    report = GateReport(contributor=drop.contributor, task_id=drop.folder,
                        drop=run.context.intake.uri_for(drop.prefix.rstrip("/")),
                        fingerprint=drop.fingerprint(rules_fingerprint()), run_time=run.run_time)
    return report, catalog.report_prefix(report_folder(drop.folder), contributor_folder(drop.contributor), run.run_time)


def take_drop(drop: Drop, context: RunContext, run_time: str, clash: list[Claimant] | None = None,
              force: bool = False) -> DropRun | DropOutcome:
    """The drop's outcome of its last gate when nothing it depends on changed (reusable_outcome), else what
    its gate is given. `clash`: every drop of the same task id in this run (task_id_clashes), earliest first."""
    ownership = drop_ownership(drop, context, clash)
    reused = reusable_outcome(drop, context, ownership, force)
    return reused if reused is not None else DropRun(drop, context, run_time, ownership)


def gate_drop(
    drop: Drop,
    run: RunContext,
    run_time: str,
    clash: list[Claimant] | None = None,
    force: bool = False,
) -> tuple[DropOutcome, GateReport | None]:
    """Gate one drop in this process; returns its outcome and, unless unchanged, its report (see take_drop)."""
    taken = take_drop(drop, run, run_time, clash, force)
    return (taken, None) if isinstance(taken, DropOutcome) else run_gate(taken)


def run_gate(run: DropRun, progress: Progress | None = None) -> tuple[DropOutcome, GateReport]:
    """The gate's work on one drop (no cache): checks, report, staging when it passes."""
    intake, private = run.context.intake, run.context.private
    report, report_prefix = new_report(run)
    staged_uri = None
    with tempfile.TemporaryDirectory(prefix="challenge-gate-") as tmp:
        workdir = Path(tmp)
        gate = DropGate(run, intake, private, workdir, report, progress)
        docs_dir = workdir / "report" / catalog.DATA_DOCS
        try:
            gate.check_regular_files()
            gate.step("reading the drop")
            drop_dir = gate.download()
            gate.check_owner(run.ownership)
            gate.step("reading task.yaml")
            spec = gate.load_spec(drop_dir)
            gate.step("reading the data files")
            raw = gate.read_tables(spec, drop_dir)
            gate.step("standardizing the tables")
            tables, absent = gate.standardize(spec, raw)
            del raw
            report.tables = {
                name: {"rows": t.num_rows, "columns": t.column_names, "schema": [f"{f.name}: {f.type}" for f in t.schema]}
                for name, t in tables.items()
            }
            gate.step("running the checks")
            with ThreadPoolExecutor(max_workers=1) as pool:
                # One thread encodes the staged Parquet files (uploaded only if the drop passes: not
                # encoded for a drop that already failed), then runs the custom checks, while GX validates
                # in this one: both cores busy, and the two Arrow jobs' memory peaks one after the other.
                encoded = pool.submit(write_parquet_files, tables, workdir / "staged") if not report.failures else None
                report.checks.extend(run_quality_gate(tables, spec, drop_dir, docs_dir, pool, absent))
                if encoded is not None:
                    encoded.result()
            if docs_dir.is_dir():
                report.data_docs = private.uri_for(catalog.data_docs_page(report_prefix))
            if report.verdict == "pass":
                gate.step("staging the data")
                staged_uri = gate.stage(spec, drop_dir, fingerprint=report.fingerprint, out=workdir / "staged")
        except _GateStopped:
            pass
        gate.step("writing the report")
        report_uri = write_report(private, report, report_prefix, workdir / "report")
    return finish(private, run, report, report_uri, staged_uri), report


def write_report(private: Storage, report: GateReport, report_prefix: str, folder: Path) -> str:
    """report.json and report.md (and the Data Docs already in `folder`) under `report_prefix`; the report's URI."""
    report_uri = private.uri_for(catalog.report_key(report_prefix))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / catalog.REPORT_JSON).write_bytes(report.to_json())
    (folder / catalog.REPORT_MARKDOWN).write_text(render_markdown(report, report_uri), encoding="utf-8")
    upload_tree(private, folder, report_prefix)
    return report_uri


def finish(private: Storage, run: DropRun, report: GateReport, report_uri: str, staged_uri: str | None = None,
           retry: bool = False) -> DropOutcome:
    """The drop's outcome, noted in latest-<contributor>.json with what it depended on (see reusable_outcome)."""
    ownership = run.ownership
    outcome = DropOutcome(
        drop=run.drop.name, task_id=report.task_id, verdict=report.verdict, status="gated",
        report=report_uri, staged=staged_uri, failures=[one_line(c) for c in report.failures + report.skipped],
        owner=ownership.owner,
    )
    note: GateNote = {"fingerprint": report.fingerprint, "outcome": outcome.as_dict(), "owner": ownership.owner,
            "owner_reason": ownership.reason, "intake": run.context.config.intake.model_dump(mode="json"), "retry": retry}
    catalog.write_json(private, _latest_key(run.drop), note)
    return outcome


def stopped_gate(run: DropRun, checks: list[CheckResult], why: CheckResult, retry: bool) -> tuple[DropOutcome, GateReport]:
    """The report of a gate that was stopped (its time budget, a crash of its process): the checks it had done,
    and `why`. With `retry`, the next run gates the drop again even if nothing changed."""
    private = run.context.private
    report, report_prefix = new_report(run)
    report.checks = [*checks, why]
    with tempfile.TemporaryDirectory(prefix="challenge-gate-") as tmp:
        report_uri = write_report(private, report, report_prefix, Path(tmp))
    return finish(private, run, report, report_uri, retry=retry), report
