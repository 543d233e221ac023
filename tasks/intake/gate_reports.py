"""The quality report of one drop: report.json for machines, markdown for people. Both list every
failed check, every warning and every check that could not run (and why), in one report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from challenge.core.inert import markdown_code, markdown_text
from challenge.expectations.checks import CheckResult


@dataclass
class GateReport:
    """What the gate found for one drop."""

    contributor: str
    task_id: str
    drop: str
    fingerprint: str
    run_time: str
    checks: list[CheckResult] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_docs: str | None = None

    @property
    def verdict(self) -> str:
        return "fail" if any(c.blocking for c in self.checks) else "pass"

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == "warning" and not c.skipped]

    @property
    def skipped(self) -> list[CheckResult]:
        """Checks that could not run (a column they read is missing or unusable)."""
        return [c for c in self.checks if c.skipped]

    def as_dict(self) -> dict[str, Any]:
        return {
            "drop": self.drop,
            "contributor": self.contributor,
            "task_id": self.task_id,
            "verdict": self.verdict,
            "fingerprint": self.fingerprint,
            "run_time": self.run_time,
            "tables": self.tables,
            "failed_checks": [c.as_dict() for c in self.failures],
            "warnings": [c.as_dict() for c in self.warnings],
            "skipped_checks": [c.as_dict() for c in self.skipped],
            "checks_run": len(self.checks) - len(self.skipped),
            "checks_passed": sum(c.success for c in self.checks),
            "checks_skipped": len(self.skipped),
            "data_docs": self.data_docs,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False, default=str).encode("utf-8")


def one_line(check: CheckResult) -> str:
    """`table.column: check — hint (N rows)`, for CLI output and logs."""
    where = check.table + (f".{check.column}" if check.column else "")
    count = f" ({check.count} affected)" if check.count > 1 else ""
    return f"{where}: {check.check}: {check.hint}{count}"


def _cell(value: Any) -> str:
    """A table cell from the drop (names, example values, hints from task.yaml): inert markdown, cut."""
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return markdown_text(text[:200])


def render_markdown(report: GateReport, report_uri: str) -> str:
    """A readable summary for the Prefect artifact and report.md."""
    icon = "✅ pass" if report.verdict == "pass" else "❌ fail"
    lines = [
        f"# Quality gate: {markdown_code(report.task_id)} from {markdown_code(report.contributor)} — {icon}",
        "",
        f"- drop: {markdown_code(report.drop)}",
        f"- checks: {len(report.checks) - len(report.skipped)} run, {sum(c.success for c in report.checks)} passed, "
        f"{len(report.failures)} failed, {len(report.warnings)} warnings"
        + (f", {len(report.skipped)} not checked" if report.skipped else ""),
        f"- report: {markdown_code(report_uri)}",
    ]
    if report.data_docs:
        lines.append(f"- Data Docs: {markdown_code(report.data_docs)} (static pages that open without a network: open that "
                     "index.html, or copy its data_docs folder and open it locally)")
    for name, info in report.tables.items():
        lines.append(f"- table {markdown_code(name)}: {info.get('rows', '?')} rows, {len(info.get('columns', []))} columns")
    for title, checks in (("Failed checks", report.failures), ("Warnings", report.warnings)):
        if not checks:
            continue
        lines += ["", f"## {title}", "", "| table | column | check | count | examples | how to fix |", "|---|---|---|---|---|---|"]
        for c in checks:
            lines.append(
                f"| {markdown_code(c.table)} | {markdown_code(c.column or '')} | {markdown_code(c.check)} | {c.count} | "
                f"{_cell(c.examples)} | "
                f"{_cell(c.hint)} |"
            )
    if report.skipped:
        lines += ["", "## Not checked", "", "These checks could not run on this drop; the failures above say what to fix.",
                  "", "| table | column | check | why |", "|---|---|---|---|"]
        lines += [f"| {markdown_code(c.table)} | {markdown_code(c.column or '')} | {markdown_code(c.check)} | {_cell(c.skipped)} |"
                  for c in report.skipped]
    return "\n".join(lines) + "\n"
