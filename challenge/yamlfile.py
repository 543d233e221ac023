"""Load YAML files into pydantic models with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from challenge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse a YAML mapping; `source` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty; see the example in the README")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `file: key.path: what is wrong`."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def model_from_yaml(model: type[M], text: str, source: str, context: dict[str, Any] | None = None) -> M:
    """Validate YAML text against `model`, raising ConfigError naming `source` and the key."""
    data = parse_yaml(text, source)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def load_model(model: type[M], path: Path, context: dict[str, Any] | None = None) -> M:
    """Read `path` and validate it as `model`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    return model_from_yaml(model, text, str(path), context)
