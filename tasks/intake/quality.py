"""Run a drop's standardized tables through the quality gate (SPEC §6).

Generic suites per kind live in expectations/<kind>.yaml; the task adds its
own expectations in task.yaml. Great Expectations runs the expectations and
writes Data Docs; expectations/custom_checks.py holds the rest. Everything
ends up as CheckResults in one list, named with the contributor's columns
(`penguin_id`, `species`: GX validates a frame with those names).

A drop that lacks a table or a column is checked all the same: every check
whose columns are there runs, and each other one is a skipped CheckResult
saying what it misses (`species is missing from penguins.csv`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from challenge.core.errors import ConfigError
from challenge.core.task_spec import Modality, TaskSpec, snake_case
from challenge.expectations import SUITES_DIR
from challenge.expectations.checks import CheckResult, failed, skipped
from challenge.expectations.custom_checks import CUSTOM_CHECKS, NEEDS, CheckContext
from challenge.tasks.intake.data_docs import make_offline
from challenge.tasks.intake.standardize import contributor_columns

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

INDEX_COLUMNS = {"data": ["id"], "records": ["id"], "pairs": ["left_id", "right_id"]}
COLUMN_KWARGS = ("column", "column_A", "column_B")


@cache
def load_suite(kind: str) -> dict[str, Any]:
    """The generic suite file for `kind`, parsed."""
    path = SUITES_DIR / f"{kind}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "tables" not in data:
        raise ConfigError(f"{path}: a suite needs `name` and `tables`")
    return data


def rules_fingerprint() -> str:
    """Changes whenever a suite file or a custom check changes (drops are then re-gated)."""
    digest = hashlib.sha256()
    for path in sorted(SUITES_DIR.glob("*.yaml")) + [SUITES_DIR / "custom_checks.py"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _std_column(name: str, spec: TaskSpec) -> str:
    if name == spec.id_column:
        return "id"
    if name in (spec.label_column, spec.pairs_label):
        return "label"
    return snake_case(name)


def task_expectations(spec: TaskSpec) -> tuple[dict[str, list[dict[str, Any]]], list[CheckResult]]:
    """The task's own expectations, with column names mapped to the standard ones."""
    default_table = "data" if spec.kind == "classification" else "records"
    by_table: dict[str, list[dict[str, Any]]] = {}
    problems = []
    for index, exp in enumerate(spec.expectations):
        table = exp.table or default_table
        if table not in spec.data_files():
            problems.append(failed(
                "task_expectation_invalid", "task.yaml", count=1, examples=[exp.type],
                hint=f"expectations[{index}]: table '{table}' does not exist for a {spec.kind} task",
            ))
            continue
        kwargs = dict(exp.kwargs)
        for key in COLUMN_KWARGS:
            if isinstance(kwargs.get(key), str):
                kwargs[key] = _std_column(kwargs[key], spec)
        if isinstance(kwargs.get("column_list"), list):
            kwargs["column_list"] = [_std_column(str(c), spec) for c in kwargs["column_list"]]
        by_table.setdefault(table, []).append({
            "type": exp.type, "kwargs": kwargs,
            "meta": {"hint": exp.hint or f"task.yaml expectations[{index}] ({exp.type}) failed; fix the data or the expectation"},
        })
    return by_table, problems


class Absent:
    """What the checks of a drop cannot read, and why: whole tables (`penguins.csv could not be read`)
    and columns (`species is missing from penguins.csv`), in the contributor's names."""

    def __init__(self, spec: TaskSpec, tables: dict[str, str] | None = None,
                 columns: dict[str, dict[str, str]] | None = None):
        self.spec, self.tables, self.columns = spec, tables or {}, columns or {}
        self.files = spec.data_files()

    def name(self, table: str, column: str) -> str:
        return contributor_columns(self.spec, table).get(column, column)

    def why(self, table: str, columns: list[str] | tuple[str, ...]) -> str | None:
        """Why a check of `table` reading `columns` (standard names; `other.column` for another table)
        cannot run, or None when it can."""
        reasons = []
        for where, name in [(table, "")] + [(c.rpartition(".")[0] or table, c.rpartition(".")[2]) for c in columns]:
            if where in self.tables:
                reasons.append(f"{self.files.get(where, where)} {self.tables[where]}")
            elif name in self.columns.get(where, {}):
                reasons.append(f"{self.name(where, name)} {self.columns[where][name]}")
        return "; ".join(dict.fromkeys(reasons)) or None


def in_contributor_names(check: CheckResult, spec: TaskSpec) -> CheckResult:
    """`check` with its column and its examples' keys in the contributor's names (`label` → `species`)."""
    names = contributor_columns(spec, check.table)
    if check.column:
        check.column = ", ".join(names.get(c, c) for c in check.column.split(", "))
    check.examples = [{names.get(k, k): v for k, v in e.items()} if isinstance(e, dict) else e for e in check.examples]
    return check


def _reads(config: dict[str, Any]) -> list[str]:
    """The columns an expectation reads (standard names)."""
    kwargs = config.get("kwargs", {})
    return [kwargs[k] for k in COLUMN_KWARGS if isinstance(kwargs.get(k), str)] + [
        c for c in kwargs.get("column_list", []) or [] if isinstance(c, str)]


def _renamed(config: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """An expectation's configuration with its columns in the contributor's names."""
    kwargs = dict(config.get("kwargs", {}))
    for key in COLUMN_KWARGS:
        if isinstance(kwargs.get(key), str):
            kwargs[key] = names.get(kwargs[key], kwargs[key])
    if isinstance(kwargs.get("column_list"), list):
        kwargs["column_list"] = [names.get(c, c) if isinstance(c, str) else c for c in kwargs["column_list"]]
    return {**config, "kwargs": kwargs}


def _build_suite(name: str, configs: list[dict[str, Any]]) -> tuple[Any, list[CheckResult]]:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = gx.ExpectationSuite(name=name)
    problems = []
    for config in configs:
        try:
            expectation = ExpectationConfiguration(
                type=config["type"], kwargs=config.get("kwargs", {}), meta=config.get("meta", {}),
                severity=config.get("severity", "critical"),
            ).to_domain_obj()
        except Exception as exc:  # GX raises several unrelated types for a bad expectation
            problems.append(failed(
                "task_expectation_invalid", name, count=1, examples=[config.get("type")],
                hint=f"expectation {config.get('type')} with {config.get('kwargs')} is not valid: {str(exc).splitlines()[0]}",
            ))
            continue
        suite.add_expectation(expectation)
    return suite, problems


def _columns_needed(table: pa.Table, configs: list[dict[str, Any]], index_columns: list[str]) -> list[str]:
    """Only the columns the expectations read go to pandas (text columns stay in Arrow)."""
    needed = set(index_columns)
    for config in configs:
        kwargs = config.get("kwargs", {})
        if config["type"].startswith("expect_table_column"):
            return table.column_names
        needed.update(kwargs[k] for k in COLUMN_KWARGS if isinstance(kwargs.get(k), str))
        needed.update(c for c in kwargs.get("column_list", []) if isinstance(c, str))
    return [c for c in table.column_names if c in needed] + sorted(needed - set(table.column_names))


def _result_to_check(result: Any, table: str) -> CheckResult:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list", []) or []) or None
    severity = "warning" if str(getattr(config.severity, "value", config.severity)) == "warning" else "error"
    hint = (config.meta or {}).get("hint", "See the Data Docs for details.")
    info = result.exception_info or {}
    if isinstance(info, dict) and not info.get("raised_exception", False):
        info = next((v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")), {})
    if result.success:
        return CheckResult(check=config.type, table=table, success=True, column=column, source="gx", severity=severity)
    details = result.result or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message", "")).splitlines()[0] if info.get("exception_message") else "error"
        return failed(config.type, table, column=column, hint=f"the expectation could not run: {message}",
                      message=message, source="gx", severity=severity)
    examples = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
    if examples and all(isinstance(e, int) for e in examples):  # no id column: pandas positions, as rows from 1
        values = details.get("partial_unexpected_list") or [None] * len(examples)
        examples = [{"row": e + 1, **({column: v} if column else {})} for e, v in zip(examples, values)]
    if not examples and "observed_value" in details:
        examples = [{"observed_value": details["observed_value"]}]
    count = details.get("unexpected_count") or 1
    return failed(config.type, table, column=column, count=int(count), examples=list(examples), hint=hint,
                  source="gx", severity=severity)


def _quiet_context() -> Any:
    """An ephemeral GX context without progress bars, info logs or per-batch row hashing."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # GX fingerprints every pandas batch by hashing all its rows (~0.9 s per 1M rows);
    # drops are fingerprinted by content already, so skip it.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def run_expectations(
    tables: dict[str, pa.Table], configs_by_table: dict[str, list[dict[str, Any]]], docs_dir: Path, run_name: str,
    absent: Absent | None = None, validated: list[tuple[str, Any]] | None = None,
) -> list[CheckResult]:
    """Validate each table with GX and write Data Docs under `docs_dir` (`validated` receives each table's
    GX result, for their index: see make_offline). With `absent`, GX sees the contributor's column names,
    and an expectation reading an absent column is skipped."""
    import great_expectations as gx

    context = _quiet_context()
    context.add_data_docs_site(
        site_name="report",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas(name="drop")
    checks: list[CheckResult] = []
    validated = [] if validated is None else validated
    for table_name, all_configs in configs_by_table.items():
        names = contributor_columns(absent.spec, table_name) if absent else {}
        configs = []
        for config in all_configs:
            why = absent.why(table_name, _reads(config)) if absent else None
            if why is None:
                configs.append(config)
                continue
            severity = "warning" if config.get("severity") == "warning" else "error"
            checks.append(skipped(config["type"], table_name, why, ", ".join(names.get(c, c) for c in _reads(config)) or None,
                                  "gx", severity))
        if table_name not in tables or not configs:
            continue
        suite, problems = _build_suite(f"{run_name}-{table_name}", [_renamed(c, names) for c in configs])
        checks.extend(problems)
        table = tables[table_name]
        index_columns = [c for c in INDEX_COLUMNS[table_name] if c in table.column_names]
        columns = [c for c in _columns_needed(table, configs, index_columns) if c in table.column_names]
        frame = table.select(columns).rename_columns([names.get(c, c) for c in columns]).to_pandas(types_mapper=None)
        batch_definition = source.add_dataframe_asset(name=table_name).add_batch_definition_whole_dataframe(table_name)
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{run_name}-{table_name}", data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{run_name}-{table_name}",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["report"])],
            result_format={"result_format": "SUMMARY",
                           "unexpected_index_column_names": [names.get(c, c) for c in index_columns],
                           "partial_unexpected_count": 5},
        ))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        for run_result in outcome.run_results.values():
            validated.append((table_name, run_result))
            checks.extend(_result_to_check(r, table_name) for r in run_result.results)
    return checks


def run_custom_checks(tables: dict[str, pa.Table], spec: TaskSpec, drop_dir: Path,
                      absent: Absent | None = None) -> list[CheckResult]:
    """The suite's custom checks (expectations/custom_checks.py) for this kind, in the contributor's
    column names; one reading an absent table or column is skipped (see NEEDS)."""
    context = CheckContext(spec=spec, drop_dir=drop_dir)
    absent = absent or Absent(spec)
    results: list[CheckResult] = []
    for table_name, rules in load_suite(spec.kind)["tables"].items():
        for entry in rules.get("custom_checks", []) or []:
            check = CUSTOM_CHECKS.get(entry["check"])
            if check is None:
                raise ConfigError(f"{SUITES_DIR / (spec.kind + '.yaml')}: unknown custom check {entry['check']!r}")
            kwargs = dict(entry.get("kwargs") or {})
            if "table" in check.__code__.co_varnames:
                kwargs.setdefault("table", table_name)
            own = kwargs.get("table", table_name)
            needs = NEEDS.get(entry["check"], ())
            why = absent.why(own, needs) or (None if own in tables else f"{absent.files.get(own, own)} was not read")
            if why:
                reads = [c.rpartition(".")[2] for c in needs if c.rpartition(".")[0] in ("", own)]
                missing = [c for c in reads if absent.why(own, [c]) and c in absent.columns.get(own, {})] or reads
                results.append(skipped(entry["check"], own, why, ", ".join(absent.name(own, c) for c in missing) or None))
                continue
            results.extend(in_contributor_names(r, spec) for r in check(tables, context, **kwargs))
            if entry["check"] == "images_decode":  # each image column it could not find
                for feature in context.features(Modality.image):
                    if (why := absent.why(own, [feature])) is not None:
                        results.append(skipped("images_decode", own, why, absent.name(own, feature)))
    return results


def run_quality_gate(
    tables: dict[str, pa.Table], spec: TaskSpec, drop_dir: Path, docs_dir: Path, pool: Executor | None = None,
    absent: Absent | None = None,
) -> list[CheckResult]:
    """All checks of the gate on standardized tables: GX suites, task expectations, custom checks; with
    `absent` (the tables and columns the drop lacks), each check that reads one of them is skipped.

    The custom checks (Arrow compute and numpy, which release the GIL) run on `pool` (a thread of their
    own when None) while GX, mostly Python, validates in this thread.
    """
    absent = absent or Absent(spec)
    if pool is None:
        with ThreadPoolExecutor(max_workers=1) as own:
            return run_quality_gate(tables, spec, drop_dir, docs_dir, own, absent)
    suite = load_suite(spec.kind)
    configs = {name: list(rules.get("expectations", []) or []) for name, rules in suite["tables"].items()}
    extra, problems = task_expectations(spec)
    for name, more in extra.items():
        configs.setdefault(name, []).extend(more)
    custom = pool.submit(run_custom_checks, tables, spec, drop_dir, absent)
    validated: list[tuple[str, Any]] = []
    checks = problems + run_expectations(tables, configs, docs_dir, spec.task_id, absent, validated)
    checks += custom.result()
    if docs_dir.is_dir():  # pages that open offline, and an index of them with what was not checked
        make_offline(docs_dir, spec.task_id, validated, [c for c in checks if c.skipped], absent.files)
    return checks
