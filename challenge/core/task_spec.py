"""task.yaml: what a contributor declares about a dataset (SPEC §5)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from challenge.core.metrics import metric_names
from challenge.core.yamlfile import model_from_yaml

TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
DATA_EXTENSIONS = (".csv", ".parquet", ".jsonl")

CLASSIFICATION_METRICS = metric_names("classification")  # from the registry: one list
MATCHING_METRICS = metric_names("matching")


class Modality(str, Enum):
    text = "text"
    numeric = "numeric"
    categorical = "categorical"
    image = "image"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(Strict):
    """A feature column: its modality, an optional description for the dataset card, and whether its
    value alone identifies a record (e.g. a title): then a test row repeating a train row's value is
    reported as a leak on its own, not only as part of the whole record. A numeric column may hold
    NaN, inf and -inf only with allow_nonfinite (the gate's numeric_values_finite check)."""

    modality: Modality
    description: str = ""
    identifying: bool = False
    allow_nonfinite: bool = False

    @model_validator(mode="after")
    def nonfinite_is_numeric(self) -> "ColumnSpec":
        if self.allow_nonfinite and self.modality is not Modality.numeric:
            raise ValueError(f"allow_nonfinite is for numeric columns; this one is {self.modality.value}")
        return self


class PairColumns(Strict):
    left: str = "left_id"
    right: str = "right_id"
    label: str = "label"


class SplitOptions(Strict):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0

    @field_validator("seed", mode="before")
    @classmethod
    def seed_is_int(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("seed must be an integer")
        return value


class TaskExpectation(Strict):
    """One Great Expectations expectation the contributor adds for this task."""

    type: str = Field(pattern=r"^expect_[a-z_]+$")
    kwargs: dict[str, Any] = {}
    table: Literal["data", "records", "pairs"] | None = None
    hint: str = ""


def _check_data_file(value: str | None) -> str | None:
    if value is None:
        return value
    if not value.lower().endswith(DATA_EXTENSIONS):
        raise ValueError(f"{value!r}: data files must be .csv, .parquet or .jsonl")
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r}: must be a path inside the drop folder")
    return value


class TaskSpec(Strict):
    task_id: str = Field(pattern=TASK_ID_PATTERN)
    kind: Literal["classification", "matching"]
    title: str = Field(min_length=1)
    description: str = ""
    owner: str = Field(min_length=1)
    license: str = Field(min_length=1)
    metric: str
    id_column: str = Field(min_length=1)
    label_column: str | None = None
    columns: dict[str, ColumnSpec]
    data: str | None = None
    records: str | None = None
    pairs: str | None = None
    pair_columns: PairColumns = PairColumns()
    images: str | None = None
    split: SplitOptions = SplitOptions()
    expectations: list[TaskExpectation] = []
    allow_nonfinite: bool = False  # every numeric column may hold NaN, inf and -inf

    @field_validator("columns", mode="before")
    @classmethod
    def modality_shorthand(cls, value: Any) -> Any:
        """`column: text` is shorthand for `column: {modality: text}`."""
        if isinstance(value, dict):
            return {k: ({"modality": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("data", "records", "pairs")
    @classmethod
    def data_file(cls, value: str | None) -> str | None:
        return _check_data_file(value)

    @field_validator("images")
    @classmethod
    def images_folder(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/")):
            raise ValueError(f"{value!r}: must be a folder inside the drop")
        return value.strip("/") if value else value

    @model_validator(mode="after")
    def consistent_with_kind(self) -> "TaskSpec":
        if not self.columns:
            raise ValueError("columns: declare at least one feature column with its modality")
        if self.kind == "classification":
            if self.metric not in CLASSIFICATION_METRICS:
                raise ValueError(f"metric {self.metric!r} is not a classification metric; use one of {', '.join(CLASSIFICATION_METRICS)}")
            if not self.data:
                raise ValueError("a classification task needs `data`: the file holding its table")
            if self.records or self.pairs:
                raise ValueError("`records`/`pairs` are for matching tasks; a classification task has `data`")
            if not self.label_column:
                raise ValueError("a classification task needs `label_column`")
        else:
            if self.metric not in MATCHING_METRICS:
                raise ValueError(f"metric {self.metric!r} is not a matching metric; use one of {', '.join(MATCHING_METRICS)}")
            if not (self.records and self.pairs):
                raise ValueError("a matching task needs `records` and `pairs` files")
            if self.data:
                raise ValueError("`data` is for classification tasks; a matching task has `records` and `pairs`")
            if self.label_column and self.label_column != self.pair_columns.label:
                if "label" in self.pair_columns.model_fields_set:
                    raise ValueError("label_column and pair_columns.label disagree; give one of them")
        for name in (self.id_column, self.label_column):
            if name and name in self.columns:
                raise ValueError(f"{name!r} is the id or label column; do not list it under `columns`")
        if any(c.modality is Modality.image for c in self.columns.values()) and not self.images:
            raise ValueError("image columns need `images`: the folder their paths are relative to")
        return self

    @property
    def pairs_label(self) -> str:
        """Name of the label column in the pairs table (matching)."""
        if "label" in self.pair_columns.model_fields_set or not self.label_column:
            return self.pair_columns.label
        return self.label_column

    def columns_of(self, modality: Modality) -> list[str]:
        return [name for name, col in self.columns.items() if col.modality is modality]

    def identifying_columns(self) -> list[str]:
        return [name for name, col in self.columns.items() if col.identifying]

    def allows_nonfinite(self, column: str) -> bool:
        """Whether the numeric `column` may hold NaN, inf and -inf (the column's or the task's allow_nonfinite)."""
        return self.allow_nonfinite or (column in self.columns and self.columns[column].allow_nonfinite)

    def data_files(self) -> dict[str, str]:
        """Logical table name → file in the drop."""
        if self.kind == "classification":
            return {"data": self.data or ""}
        return {"records": self.records or "", "pairs": self.pairs or ""}


def parse_task_spec(text: str, source: str) -> TaskSpec:
    """Validate task.yaml text; errors name `source` and the key."""
    return model_from_yaml(TaskSpec, text, source)


def snake_case(name: str) -> str:
    """Normalize a column name: 'Bill Length (mm)' → 'bill_length_mm'."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    name = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    if not name:
        return "column"
    return f"c_{name}" if name[0].isdigit() else name
