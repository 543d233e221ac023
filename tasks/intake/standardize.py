"""Turn a contributor's tables into the standard Arrow schema of a task.

Classification: `id` (string), features in declared order, `label` (string).
Matching: records `id` + features; pairs `left_id`, `right_id`, `label` (int8 0/1).
Feature types by modality: text/image → string, categorical → dictionary
string, numeric → int64 or float64. Column names become snake_case.

A table that lacks a declared column, or has one that does not parse, is
still standardized with the columns it has (the gate checks what it can and
says which checks it skipped); such a table never passes, so it is never
staged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from challenge.core.task_spec import Modality, TaskSpec, snake_case
from challenge.expectations.checks import CheckResult, failed, passed

ID, LABEL, LEFT, RIGHT = "id", "label", "left_id", "right_id"
CATEGORICAL_TYPE = pa.dictionary(pa.int32(), pa.string())


@dataclass
class Standardized:
    """A standardized table, or None with the checks explaining why not."""

    table: pa.Table | None
    checks: list[CheckResult]
    absent: dict[str, str] = field(default_factory=dict)  # standard column → why `table` lacks it


def feature_names(spec: TaskSpec) -> dict[str, str]:
    """Declared feature column → standard (snake_case) name."""
    return {name: snake_case(name) for name in spec.columns}


def contributor_columns(spec: TaskSpec, table_name: str) -> dict[str, str]:
    """Standard column → the contributor's own name for it (`id` → `penguin_id`, `label` → `species`,
    `body_mass_g` → `Body Mass (g)`): what reports and Data Docs call it."""
    if table_name == "pairs":
        return {LEFT: spec.pair_columns.left, RIGHT: spec.pair_columns.right, LABEL: spec.pairs_label}
    names: dict[str, str] = {}
    for original, normalized in feature_names(spec).items():
        names.setdefault(normalized, original)
    names[ID] = spec.id_column
    if spec.kind == "classification" and spec.label_column:
        names[LABEL] = spec.label_column
    return names


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


def listed(names: list[str], most: int = 10) -> str:
    """`a, b, c` (the first `most` names, then `and N more`)."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _missing_columns(table: pa.Table, wanted: list[str], table_name: str, file_name: str,
                     file_columns: list[str]) -> CheckResult:
    missing = [c for c in wanted if c not in table.column_names]
    if not missing:
        return passed("declared_columns_present", table_name, source="schema")
    return failed(
        "declared_columns_present", table_name, column=", ".join(missing), count=len(missing),
        examples=missing, source="schema",
        hint=f"{file_name} lacks declared column(s) {', '.join(missing)}; its columns are "
             f"{listed(file_columns, 20)}. Fix task.yaml or the file",
    )


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column if column.type == pa.string() else pc.cast(column, pa.string())


def _as_numeric(column: pa.ChunkedArray, name: str, table_name: str, ids: pa.ChunkedArray | None,
                id_name: str) -> tuple[pa.ChunkedArray | None, CheckResult]:
    check = "numeric_columns_parse"
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type) or pa.types.is_null(column.type):
        return pc.cast(column, pa.int64()), passed(check, table_name, name, "schema")
    if pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64()), passed(check, table_name, name, "schema")
    text = pc.utf8_trim_whitespace(_as_string(column))
    # NaN written as text is a missing value, as the CSV reader reads it (its null markers include NaN, nan);
    # inf, Infinity and numbers beyond ±1.8e308 become ±inf (numeric_values_finite fails them unless allowed).
    nan = pc.fill_null(pc.match_substring_regex(text, r"^[+-]?(?i:nan)$"), False)
    text = pc.if_else(nan, pa.scalar(None, pa.string()), text)
    looks_numeric = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(?i:inf|infinity)$")
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(looks_numeric, False)))
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        where = (id_name, pc.filter(ids, bad)) if ids is not None else ("row", pc.add(pc.indices_nonzero(bad), 1))
        bad_ids = where[1].slice(0, 5).to_pylist()
        bad_values = pc.filter(text, bad).slice(0, 5).to_pylist()
        return None, failed(
            check, table_name, column=name, count=n_bad, source="schema",
            examples=[{where[0]: i, "value": v} for i, v in zip(bad_ids, bad_values)],
            hint=f"'{name}' is declared numeric but {n_bad} value(s) are not numbers; fix them, "
                 "leave them empty for missing, or declare the column text/categorical",
        )
    return pc.cast(text, pa.float64()), passed(check, table_name, name, "schema")


def _feature(column: pa.ChunkedArray, modality: Modality) -> pa.ChunkedArray:
    text = _as_string(column)
    if modality is Modality.categorical:
        return text.dictionary_encode().cast(CATEGORICAL_TYPE)
    return text


def standardize_records(table: pa.Table, spec: TaskSpec, table_name: str, file_name: str,
                        file_columns: list[str] | None = None) -> Standardized:
    """Classification `data` or matching `records` → id, features…, [label]: the declared columns the
    file has (`absent` says why any other is left out). `file_columns`: every column of the file, when
    `table` holds only the declared ones."""
    with_label = spec.kind == "classification"
    wanted = [spec.id_column, *spec.columns] + ([spec.label_column] if with_label else [])
    file_columns = table.column_names if file_columns is None else file_columns
    presence = _missing_columns(table, wanted, table_name, file_name, file_columns)
    checks = [presence]
    missing, absent = f"is missing from {file_name}", {}
    arrays, fields = [], []
    ids = _as_string(table[spec.id_column]) if spec.id_column in table.column_names else None
    if ids is None:
        absent[ID] = missing
    else:
        arrays, fields = [ids], [pa.field(ID, pa.string())]
    taken = {ID, LABEL, LEFT, RIGHT}
    for original, normalized in feature_names(spec).items():
        modality = spec.columns[original].modality
        if normalized in taken:  # a name clash (column_names_distinct fails): the first column keeps the name
            continue
        taken.add(normalized)
        if original not in table.column_names:
            absent[normalized] = missing
            continue
        if modality is Modality.numeric:
            array, check = _as_numeric(table[original], original, table_name, ids, spec.id_column)
            checks.append(check)
            if array is None:
                absent[normalized] = "is declared numeric but has values that are not numbers"
                continue
        else:
            array = _feature(table[original], modality)
        arrays.append(array)
        fields.append(pa.field(normalized, array.type))
    if with_label and (spec.label_column or "") in table.column_names:
        arrays.append(_as_string(table[spec.label_column or ""]))
        fields.append(pa.field(LABEL, pa.string()))
    elif with_label:
        absent[LABEL] = missing
    declared = set(wanted)
    undeclared = [c for c in file_columns if c not in declared]
    if undeclared:
        checks.append(failed(
            "undeclared_columns", table_name, column=listed(undeclared), count=len(undeclared),
            examples=undeclared, severity="warning", source="schema",
            hint="these columns are not declared in task.yaml and are left out; declare them to keep them",
        ))
    if not arrays:  # none of the declared columns: nothing to check, not even the row count
        return Standardized(None, checks, absent)
    return Standardized(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), checks, absent)


def standardize_pairs(table: pa.Table, spec: TaskSpec, file_name: str,
                      file_columns: list[str] | None = None) -> Standardized:
    """Matching `pairs` → left_id, right_id, label (int8 0/1): the columns the file has, as
    standardize_records does."""
    names = spec.pair_columns
    label_name = spec.pairs_label
    presence = _missing_columns(table, [names.left, names.right, label_name], "pairs", file_name,
                                table.column_names if file_columns is None else file_columns)
    checks, absent, arrays, fields = [presence], {}, [], []
    ids: dict[str, pa.ChunkedArray] = {}
    for standard, name in ((LEFT, names.left), (RIGHT, names.right)):
        if name in table.column_names:
            ids[standard] = _as_string(table[name])
            arrays.append(ids[standard])
            fields.append(pa.field(standard, pa.string()))
        else:
            absent[standard] = f"is missing from {file_name}"
    if label_name not in table.column_names:
        absent[LABEL] = f"is missing from {file_name}"
    else:
        label, check = _pair_labels(table[label_name], spec, ids)
        checks.append(check)
        if label is None:
            absent[LABEL] = "has values that are not 0 or 1"
        else:
            arrays.append(label)
            fields.append(pa.field(LABEL, pa.int8()))
    if not arrays:
        return Standardized(None, checks, absent)
    return Standardized(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), checks, absent)


def _pair_labels(raw: pa.ChunkedArray, spec: TaskSpec, ids: dict[str, pa.ChunkedArray]) -> tuple[pa.ChunkedArray | None, CheckResult]:
    """The pair labels as int8 0/1 (1, 1.0, true → 1; 0, 0.0, false → 0), or None and the rows that are not."""
    names, label_name = spec.pair_columns, spec.pairs_label
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
        def shown(values: pa.ChunkedArray | None) -> list:
            return pc.filter(values, bad).slice(0, 5).to_pylist() if values is not None else [None] * 5
        examples = [{names.left: a, names.right: b, label_name: v}
                    for a, b, v in zip(shown(ids.get(LEFT)), shown(ids.get(RIGHT)), shown(_as_string(raw)))]
        return None, failed(
            "pair_labels_binary", "pairs", column=label_name, count=n_bad, examples=examples, source="schema",
            hint="pair labels must be 1 (same entity) or 0 (different); fix these rows",
        )
    return pc.cast(as_text, pa.int8()), passed("pair_labels_binary", "pairs", label_name, "schema")
