"""Load YAML files into pydantic models with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from challenge.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
MAX_YAML_BYTES = 256 * 1024  # challenge.yaml and task.yaml are a few KB
MAX_DEPTH = 40  # nesting levels


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (a 1.7 KB "billion laughs" file expands to gigabytes)
    and with a nesting limit (a 20,000-deep file overflows the composer's recursion)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed; write the value out",
                                              self.peek_event().start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse a YAML mapping (bounded: size, nesting, no aliases); `source` names the file in error messages."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: the file is {len(text) / 1024:.0f} KB; a configuration file is at most "
                          f"{MAX_YAML_BYTES // 1024} KB")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc)[:500]}") from None
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
    return model_from_yaml(model, read_yaml_text(path), str(path), context)


def read_yaml_text(path: Path, name: str | None = None) -> str:
    """The text of a YAML file, read no further than MAX_YAML_BYTES; `name` is how errors call it."""
    name = name or str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a folder, not a file") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{name}: the file is larger than {MAX_YAML_BYTES // 1024} KB; is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
