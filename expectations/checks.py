"""The outcome of one quality check, whatever ran it (schema, GX, custom)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict, Unpack

MAX_EXAMPLES = 5
Severity = Literal["error", "warning"]
Source = Literal["read", "schema", "gx", "custom"]


@dataclass
class CheckResult:
    """One check on one table (and column): did it hold, and if not, what to fix."""

    check: str
    table: str
    success: bool
    column: str | None = None
    count: int = 0
    examples: list[Any] = field(default_factory=list)
    hint: str = ""
    message: str = ""
    source: Source = "custom"
    severity: Severity = "error"
    skipped: str = ""  # why the check could not run (a column it reads is missing or unusable): neither passed nor failed

    @property
    def blocking(self) -> bool:
        return not self.success and self.severity == "error" and not self.skipped

    def __post_init__(self) -> None:
        self.examples = _jsonable(list(self.examples)[:MAX_EXAMPLES])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)



class FailureDetails(TypedDict, total=False):
    """What a failed check may say beside its hint (CheckResult's fields of the same names)."""

    column: str | None
    count: int
    examples: list[Any]
    message: str
    source: Source
    severity: Severity


def passed(check: str, table: str, column: str | None = None, source: str = "custom") -> CheckResult:
    return CheckResult(check=check, table=table, success=True, column=column, source=source)  # type: ignore[arg-type]


def failed(check: str, table: str, *, hint: str, **details: Unpack[FailureDetails]) -> CheckResult:
    """A check that did not hold: `count` offending rows or values (1 unless said), a few `examples`, and
    `hint`, what to fix."""
    return CheckResult(check=check, table=table, success=False, hint=hint, **{"count": 1, **details})


def skipped(check: str, table: str, why: str, column: str | None = None, source: str = "custom",
            severity: Severity = "error") -> CheckResult:
    """A check that could not run on this drop, and why (e.g. `species is missing from penguins.csv`)."""
    return CheckResult(check=check, table=table, success=False, column=column, hint=f"not checked: {why}",
                       source=source, severity=severity, skipped=why)  # type: ignore[arg-type]


def _jsonable(values: list[Any]) -> list[Any]:
    out = []
    for value in values:
        if isinstance(value, float) and value != value:
            out.append(None)
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out.append(value)
        elif isinstance(value, dict):
            out.append({str(k): _jsonable([v])[0] for k, v in value.items()})
        elif isinstance(value, (list, tuple)):
            out.append(_jsonable(list(value)))
        else:
            out.append(str(value))
    return out
