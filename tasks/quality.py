"""Run a drop's standardized tables through the quality gate (SPEC §6).

Generic suites per kind live in expectations/<kind>.yaml; the task adds its
own expectations in task.yaml. Great Expectations runs the expectations and
writes Data Docs; expectations/custom_checks.py holds the rest. Everything
ends up as CheckResults in one list.
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

from challenge.errors import ConfigError
from challenge.expectations import SUITES_DIR
from challenge.expectations.checks import CheckResult, failed
from challenge.expectations.custom_checks import CUSTOM_CHECKS, CheckContext
from challenge.task_spec import TaskSpec, snake_case

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
    tables: dict[str, pa.Table], configs_by_table: dict[str, list[dict[str, Any]]], docs_dir: Path, run_name: str
) -> list[CheckResult]:
    """Validate each table with GX and write Data Docs (HTML) under `docs_dir`."""
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
    for table_name, configs in configs_by_table.items():
        if table_name not in tables:
            continue
        suite, problems = _build_suite(f"{run_name}-{table_name}", configs)
        checks.extend(problems)
        table = tables[table_name]
        index_columns = INDEX_COLUMNS[table_name]
        columns = [c for c in _columns_needed(table, configs, index_columns) if c in table.column_names]
        frame = table.select(columns).to_pandas(types_mapper=None)
        batch_definition = source.add_dataframe_asset(name=table_name).add_batch_definition_whole_dataframe(table_name)
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{run_name}-{table_name}", data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{run_name}-{table_name}",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["report"])],
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": index_columns,
                           "partial_unexpected_count": 5},
        ))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        for run_result in outcome.run_results.values():
            checks.extend(_result_to_check(r, table_name) for r in run_result.results)
    return checks


def run_custom_checks(tables: dict[str, pa.Table], spec: TaskSpec, drop_dir: Path) -> list[CheckResult]:
    """The suite's custom checks (expectations/custom_checks.py) for this kind."""
    context = CheckContext(spec=spec, drop_dir=drop_dir)
    results: list[CheckResult] = []
    for table_name, rules in load_suite(spec.kind)["tables"].items():
        for entry in rules.get("custom_checks", []) or []:
            check = CUSTOM_CHECKS.get(entry["check"])
            if check is None:
                raise ConfigError(f"{SUITES_DIR / (spec.kind + '.yaml')}: unknown custom check {entry['check']!r}")
            kwargs = dict(entry.get("kwargs") or {})
            if "table" in check.__code__.co_varnames:
                kwargs.setdefault("table", table_name)
            results.extend(check(tables, context, **kwargs))
    return results


def run_quality_gate(
    tables: dict[str, pa.Table], spec: TaskSpec, drop_dir: Path, docs_dir: Path, pool: Executor | None = None
) -> list[CheckResult]:
    """All checks of the gate on standardized tables: GX suites, task expectations, custom checks.

    The custom checks (Arrow compute and numpy, which release the GIL) run on `pool` (a thread of their
    own when None) while GX, mostly Python, validates in this thread.
    """
    if pool is None:
        with ThreadPoolExecutor(max_workers=1) as own:
            return run_quality_gate(tables, spec, drop_dir, docs_dir, own)
    suite = load_suite(spec.kind)
    configs = {name: list(rules.get("expectations", []) or []) for name, rules in suite["tables"].items()}
    extra, problems = task_expectations(spec)
    for name, more in extra.items():
        configs.setdefault(name, []).extend(more)
    custom = pool.submit(run_custom_checks, tables, spec, drop_dir)
    checks = problems + run_expectations(tables, configs, docs_dir, spec.task_id)
    return checks + custom.result()
