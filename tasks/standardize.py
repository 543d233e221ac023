"""Turn a contributor's tables into the standard Arrow schema of a task.

Classification: `id` (string), features in declared order, `label` (string).
Matching: records `id` + features; pairs `left_id`, `right_id`, `label` (int8 0/1).
Feature types by modality: text/image → string, categorical → dictionary
string, numeric → int64 or float64. Column names become snake_case.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from challenge.expectations.checks import CheckResult, failed, passed
from challenge.task_spec import Modality, TaskSpec, snake_case

ID, LABEL, LEFT, RIGHT = "id", "label", "left_id", "right_id"
CATEGORICAL_TYPE = pa.dictionary(pa.int32(), pa.string())


@dataclass
class Standardized:
    """A standardized table, or None with the checks explaining why not."""

    table: pa.Table | None
    checks: list[CheckResult]


def feature_names(spec: TaskSpec) -> dict[str, str]:
    """Declared feature column → standard (snake_case) name."""
    return {name: snake_case(name) for name in spec.columns}


def check_name_clashes(spec: TaskSpec) -> list[CheckResult]:
    """Two declared columns may not normalize to the same name, nor to `id`/`label`."""
    seen: dict[str, str] = {}
    checks = []
    for original, normalized in feature_names(spec).items():
        if normalized in (ID, LABEL, LEFT, RIGHT):
            checks.append(failed(
                "column_names_distinct", "task.yaml", column=original, examples=[original],
                hint=f"'{original}' becomes '{normalized}', a reserved standard column; rename it",
            ))
        elif normalized in seen:
            checks.append(failed(
                "column_names_distinct", "task.yaml", column=original, examples=[seen[normalized], original],
                hint=f"'{seen[normalized]}' and '{original}' both become '{normalized}' in snake_case; rename one",
            ))
        seen[normalized] = original
    return checks or [passed("column_names_distinct", "task.yaml", source="schema")]


def _missing_columns(table: pa.Table, wanted: list[str], table_name: str, file_name: str) -> CheckResult:
    missing = [c for c in wanted if c not in table.column_names]
    if not missing:
        return passed("declared_columns_present", table_name, source="schema")
    return failed(
        "declared_columns_present", table_name, column=", ".join(missing), count=len(missing),
        examples=missing, source="schema",
        hint=f"{file_name} lacks declared column(s) {', '.join(missing)}; its columns are "
             f"{', '.join(table.column_names)}. Fix task.yaml or the file",
    )


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column if column.type == pa.string() else pc.cast(column, pa.string())


def _as_numeric(column: pa.ChunkedArray, name: str, table_name: str, ids: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, CheckResult]:
    check = "numeric_columns_parse"
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type) or pa.types.is_null(column.type):
        return pc.cast(column, pa.int64()), passed(check, table_name, name, "schema")
    if pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64()), passed(check, table_name, name, "schema")
    text = pc.utf8_trim_whitespace(_as_string(column))
    looks_numeric = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(?i:nan|inf|-inf)$")
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(looks_numeric, False)))
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        bad_ids = pc.filter(ids, bad).slice(0, 5).to_pylist()
        bad_values = pc.filter(text, bad).slice(0, 5).to_pylist()
        return None, failed(
            check, table_name, column=name, count=n_bad, source="schema",
            examples=[{"id": i, "value": v} for i, v in zip(bad_ids, bad_values)],
            hint=f"'{name}' is declared numeric but {n_bad} value(s) are not numbers; fix them, "
                 "leave them empty for missing, or declare the column text/categorical",
        )
    return pc.cast(text, pa.float64()), passed(check, table_name, name, "schema")


def _feature(column: pa.ChunkedArray, modality: Modality) -> pa.ChunkedArray:
    text = _as_string(column)
    if modality is Modality.categorical:
        return text.dictionary_encode().cast(CATEGORICAL_TYPE)
    return text


def standardize_records(table: pa.Table, spec: TaskSpec, table_name: str, file_name: str) -> Standardized:
    """Classification `data` or matching `records` → id, features…, [label]."""
    with_label = spec.kind == "classification"
    wanted = [spec.id_column, *spec.columns] + ([spec.label_column] if with_label else [])
    presence = _missing_columns(table, wanted, table_name, file_name)
    checks = [presence]
    if not presence.success:
        return Standardized(None, checks)
    ids = _as_string(table[spec.id_column])
    arrays, fields = [ids], [pa.field(ID, pa.string())]
    for original, normalized in feature_names(spec).items():
        modality = spec.columns[original].modality
        if modality is Modality.numeric:
            array, check = _as_numeric(table[original], original, table_name, ids)
            checks.append(check)
            if array is None:
                continue
        else:
            array = _feature(table[original], modality)
        arrays.append(array)
        fields.append(pa.field(normalized, array.type))
    if with_label:
        arrays.append(_as_string(table[spec.label_column or ""]))
        fields.append(pa.field(LABEL, pa.string()))
    undeclared = [c for c in table.column_names if c not in wanted]
    if undeclared:
        checks.append(failed(
            "undeclared_columns", table_name, column=", ".join(undeclared), count=len(undeclared),
            examples=undeclared, severity="warning", source="schema",
            hint="these columns are not declared in task.yaml and are left out; declare them to keep them",
        ))
    if any(c.blocking for c in checks):
        return Standardized(None, checks)
    return Standardized(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), checks)


def standardize_pairs(table: pa.Table, spec: TaskSpec, file_name: str) -> Standardized:
    """Matching `pairs` → left_id, right_id, label (int8 0/1)."""
    names = spec.pair_columns
    label_name = spec.pairs_label
    presence = _missing_columns(table, [names.left, names.right, label_name], "pairs", file_name)
    if not presence.success:
        return Standardized(None, [presence])
    left, right = _as_string(table[names.left]), _as_string(table[names.right])
    raw = table[label_name]
    if pa.types.is_boolean(raw.type) or pa.types.is_integer(raw.type) or pa.types.is_null(raw.type):
        as_text = _as_string(pc.cast(raw, pa.int64()))
    else:
        as_text = pc.utf8_lower(pc.utf8_trim_whitespace(_as_string(raw)))
        as_text = pc.replace_substring_regex(as_text, r"^(1\.0+|true)$", "1")
        as_text = pc.replace_substring_regex(as_text, r"^(0\.0+|false)$", "0")
    binary = pc.is_in(as_text, value_set=pa.array(["0", "1"]))
    bad = pc.and_(pc.is_valid(as_text), pc.invert(binary))
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        examples = [
            {"left_id": a, "right_id": b, "label": v}
            for a, b, v in zip(
                pc.filter(left, bad).slice(0, 5).to_pylist(),
                pc.filter(right, bad).slice(0, 5).to_pylist(),
                pc.filter(_as_string(raw), bad).slice(0, 5).to_pylist(),
            )
        ]
        return Standardized(None, [presence, failed(
            "pair_labels_binary", "pairs", column=label_name, count=n_bad, examples=examples, source="schema",
            hint="pair labels must be 1 (same entity) or 0 (different); fix these rows",
        )])
    label = pc.cast(as_text, pa.int8())
    schema = pa.schema([(LEFT, pa.string()), (RIGHT, pa.string()), (LABEL, pa.int8())])
    return Standardized(
        pa.Table.from_arrays([left, right, label], schema=schema),
        [presence, passed("pair_labels_binary", "pairs", label_name, "schema")],
    )
