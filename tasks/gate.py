"""The quality gate of one drop (SPEC §6): read its task.yaml and tables, standardize them, run the
checks, write its report under `<private>/reports/<task_id>/<run-time>/` and, when it passes, stage it
under `<private>/staged/<task_id>/<version>/` (then point `current.json` at it). A drop whose
fingerprint (content + rules) is unchanged is not gated again.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from challenge import catalog
from challenge.catalog import TASK_FILE, StagedPointer
from challenge.config import ChallengeConfig
from challenge.errors import ConfigError, DataReadError
from challenge.expectations.checks import CheckResult, failed, passed
from challenge.storage import LocalStorage, Storage, download_many, open_location, upload_tree
from challenge.task_spec import Modality, TaskSpec, parse_task_spec
from challenge.tasks.drops import Drop, DropOutcome, report_folder
from challenge.tasks.quality import rules_fingerprint, run_quality_gate
from challenge.tasks.read_tables import read_table
from challenge.tasks.reports import GateReport, one_line, render_markdown
from challenge.tasks.standardize import check_name_clashes, standardize_pairs, standardize_records
from challenge.yamlfile import read_yaml_text


def _read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    if not storage.exists(key):
        return None
    return json.loads(storage.read_bytes(key))


class _GateStopped(Exception):
    """The drop cannot be checked further; the checks so far explain why."""


class DropGate:
    """Takes one drop through the gate. Public entry point: gate_drop()."""

    def __init__(self, drop: Drop, intake: Storage, private: Storage, workdir: Path, report: GateReport):
        self.drop, self.intake, self.private, self.workdir, self.report = drop, intake, private, workdir, report

    def add(self, checks: list[CheckResult] | CheckResult) -> None:
        """Record checks; stop the gate when one of them blocks."""
        checks = checks if isinstance(checks, list) else [checks]
        self.report.checks.extend(checks)
        if any(c.blocking for c in checks):
            raise _GateStopped

    def check_regular_files(self) -> None:
        """Stop at once when an entry of the drop is not a regular file (a symbolic link could point at
        another task's hidden answers; a FIFO would block): nothing of the drop is read."""
        bad = [f"{self.drop.relative(i)}: {i.problem}" for i in self.drop.files if i.problem]
        if bad:
            self.add(failed("regular_files", "drop", count=len(bad), examples=bad[:5], source="read",
                            hint=f"{len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} not regular files "
                                 "(symbolic links, named pipes, devices, unusable names) and are never read: "
                                 "put the files themselves in the drop, with plain names"))

    def download(self) -> Path:
        """A local folder holding the drop: read in place on the local backend, else downloaded."""
        if isinstance(self.intake, LocalStorage):
            return Path(self.intake.uri_for(self.drop.prefix.rstrip("/")))
        drop_dir = self.workdir / "drop"
        download_many(self.intake, [(info.key, drop_dir / self.drop.relative(info)) for info in self.drop.files])
        return drop_dir

    def load_spec(self, drop_dir: Path, clash: list[str] | None) -> TaskSpec:
        name = f"{self.drop.name}/{TASK_FILE}"
        path = drop_dir / TASK_FILE
        if not path.is_file():
            self.add(failed("task_yaml_present", TASK_FILE, source="read",
                            hint=f"{name} is missing; add a task.yaml describing the dataset (see README)"))
        try:
            spec = parse_task_spec(read_yaml_text(path, name), name)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            self.add(failed("task_yaml_valid", TASK_FILE, count=len(lines), examples=lines, source="read",
                            hint=lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)))
        self.add(passed("task_yaml_valid", TASK_FILE, source="read"))
        self.report.task_id = spec.task_id
        if spec.task_id != self.drop.folder:
            self.add(failed("task_id_matches_folder", TASK_FILE, column="task_id", examples=[spec.task_id],
                            hint=f"task_id '{spec.task_id}' differs from the folder name '{self.drop.folder}'; make them equal"))
        if clash:
            others = [c for c in clash if c != self.drop.contributor]
            self.add(failed("task_id_unique", TASK_FILE, column="task_id", examples=clash,
                            hint=f"task_id '{spec.task_id}' is also used by contributor(s) {', '.join(others)}; "
                                 "choose a distinct task_id (agree on it with the organizers)"))
        owner = _read_json(self.private, catalog.staged_pointer_key(spec.task_id))
        if owner and owner.get("contributor") != self.drop.contributor:
            self.add(failed("task_id_unique", TASK_FILE, column="task_id", examples=[owner.get("contributor")],
                            hint=f"task_id '{spec.task_id}' already belongs to contributor '{owner.get('contributor')}'; "
                                 "choose another task_id"))
        self.add(check_name_clashes(spec))
        return spec

    def read_tables(self, spec: TaskSpec, drop_dir: Path) -> dict[str, pa.Table]:
        string_columns = [spec.id_column, *(c for c, s in spec.columns.items() if s.modality is not Modality.numeric)]
        if spec.label_column and spec.kind == "classification":
            string_columns.append(spec.label_column)
        pair_strings = [spec.pair_columns.left, spec.pair_columns.right]
        tables, problems = {}, []
        for table_name, file_name in spec.data_files().items():
            try:
                tables[table_name] = read_table(
                    drop_dir / file_name, f"{self.drop.name}/{file_name}",
                    pair_strings if table_name == "pairs" else string_columns,
                )
            except DataReadError as exc:
                problems.append(failed("data_file_readable", table_name, examples=[file_name], source="read", hint=str(exc)))
        self.add(problems or [passed("data_file_readable", t, source="read") for t in tables])
        return tables

    def standardize(self, spec: TaskSpec, raw: dict[str, pa.Table]) -> dict[str, pa.Table]:
        files = spec.data_files()
        results = {
            name: (standardize_pairs(table, spec, files[name]) if name == "pairs"
                   else standardize_records(table, spec, name, files[name]))
            for name, table in raw.items()
        }
        checks = [c for r in results.values() for c in r.checks]
        self.report.checks.extend(checks)
        if any(r.table is None for r in results.values()) or any(c.blocking for c in checks):
            raise _GateStopped
        return {name: r.table for name, r in results.items() if r.table is not None}

    def stage(self, spec: TaskSpec, drop_dir: Path, fingerprint: str, out: Path) -> str:
        """Upload the standardized files in `out` under a new version folder, then point current.json at it."""
        version_prefix = catalog.staged_version_prefix(spec.task_id, fingerprint[:16])
        if spec.images:
            images_dir = drop_dir / spec.images
            if images_dir.is_dir():
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
        }
        (out / catalog.STAGED_META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        upload_tree(self.private, out, version_prefix)
        pointer = StagedPointer(task_id=spec.task_id, kind=spec.kind, contributor=self.drop.contributor,
                                version=fingerprint[:16], prefix=version_prefix, fingerprint=fingerprint,
                                staged_at=meta["staged_at"])
        catalog.write_record(self.private, catalog.staged_pointer_key(spec.task_id), pointer)
        return self.private.uri_for(version_prefix)


def write_parquet_files(tables: dict[str, pa.Table], out: Path) -> None:
    """<out>/<table>.parquet for each standardized table."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / catalog.table_file(name), compression="zstd", row_group_size=256_000)


def gate_drop(
    drop: Drop,
    config: ChallengeConfig,
    run_time: str,
    clash: list[str] | None = None,
    force: bool = False,
) -> tuple[DropOutcome, GateReport | None]:
    """Gate one drop; returns its outcome and, unless unchanged, its report."""
    intake, private = open_location(config, "intake"), open_location(config, "private")
    fingerprint = drop.fingerprint(rules_fingerprint())
    folder = report_folder(drop.folder)
    latest_key = catalog.latest_report_key(folder, drop.contributor)
    try:
        previous = _read_json(private, latest_key)
    except ValueError:  # a damaged cache note: gate the drop again, and rewrite it
        previous = None
    reusable = previous and previous.get("fingerprint") == fingerprint and not previous.get("ownership_failed")
    if reusable and not force and not clash:
        return DropOutcome(**{**previous["outcome"], "status": "unchanged"}), None

    report = GateReport(contributor=drop.contributor, task_id=drop.folder,
                        drop=intake.uri_for(drop.prefix.rstrip("/")), fingerprint=fingerprint, run_time=run_time)
    report_prefix = catalog.report_prefix(folder, run_time)
    staged_uri = None
    with tempfile.TemporaryDirectory(prefix="challenge-gate-") as tmp:
        workdir = Path(tmp)
        gate = DropGate(drop, intake, private, workdir, report)
        docs_dir = workdir / "report" / catalog.DATA_DOCS
        try:
            gate.check_regular_files()
            drop_dir = gate.download()
            spec = gate.load_spec(drop_dir, clash)
            tables = gate.standardize(spec, gate.read_tables(spec, drop_dir))
            report.tables = {
                name: {"rows": t.num_rows, "columns": t.column_names, "schema": [f"{f.name}: {f.type}" for f in t.schema]}
                for name, t in tables.items()
            }
            with ThreadPoolExecutor(max_workers=1) as pool:
                # One thread encodes the staged Parquet files (uploaded only if the drop passes), then runs
                # the custom checks, while GX validates in this one: both cores busy, and the two Arrow
                # jobs' memory peaks one after the other rather than on top of each other.
                encoded = pool.submit(write_parquet_files, tables, workdir / "staged")
                report.checks.extend(run_quality_gate(tables, spec, drop_dir, docs_dir, pool))
                encoded.result()
            if docs_dir.is_dir():
                report.data_docs = private.uri_for(catalog.data_docs_page(report_prefix))
            if report.verdict == "pass":
                staged_uri = gate.stage(spec, drop_dir, fingerprint, workdir / "staged")
        except _GateStopped:
            pass
        report_uri = private.uri_for(catalog.report_key(report_prefix))
        (workdir / "report").mkdir(exist_ok=True)
        (workdir / "report" / catalog.REPORT_JSON).write_bytes(report.to_json())
        (workdir / "report" / catalog.REPORT_MARKDOWN).write_text(render_markdown(report, report_uri), encoding="utf-8")
        upload_tree(private, workdir / "report", report_prefix)
    outcome = DropOutcome(
        drop=drop.name, task_id=report.task_id, verdict=report.verdict, status="gated",
        report=report_uri, staged=staged_uri, failures=[one_line(c) for c in report.failures],
    )
    # A failure because another contributor owns the task id depends on more than this drop's files:
    # it is checked again on the next run (the owner may have withdrawn, the organizer reassigned it).
    ownership_failed = any(c.check == "task_id_unique" for c in report.failures)
    private.write_bytes(latest_key, json.dumps({"fingerprint": fingerprint, "outcome": outcome.as_dict(),
                                                "ownership_failed": ownership_failed}, indent=2).encode())
    return outcome, report

