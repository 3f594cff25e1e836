"""Typed settings loaded from YAML, with unknown keys rejected and command-line overrides.

Each stage owns its settings class (a pydantic model deriving from :class:`Settings`); this
module only knows how to read YAML into one and how to report mistakes readably.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message says where and how to fix it."""


class Settings(BaseModel):
    """Base for every settings class: unknown keys are an error, values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


SettingsT = TypeVar("SettingsT", bound=Settings)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``"optimizer.lr=3e-5"`` into a dotted key path and a YAML-typed value.

    >>> parse_override("epochs=3")
    (['epochs'], 3)
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. epochs=3)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override set (nested keys with dots)."""
    merged = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, naming the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def build_settings(
    cls: type[SettingsT], data: Mapping[str, Any], source: str = "settings"
) -> SettingsT:
    """Validate ``data`` into ``cls``, turning pydantic's errors into one readable message."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, cls, source)) from None


def load_settings(
    cls: type[SettingsT],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> SettingsT:
    """Load ``cls`` from a YAML file (or its defaults) and apply ``key=value`` overrides.

    >>> from wordofclick.train import TrainSettings
    >>> load_settings(TrainSettings, overrides=["epochs=1"]).epochs
    1
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    source = str(path) if path is not None else "settings"
    if overrides:
        source += f" (with overrides {' '.join(overrides)})"
    return build_settings(cls, data, source)


def format_validation_error(error: ValidationError, cls: type[BaseModel], source: str) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            known = ", ".join(sorted(_field_names(cls, item["loc"][:-1])))
            lines.append(f"unknown key {field!r}; expected one of: {known}")
        else:
            got = item.get("input")
            lines.append(f"field {field!r}: {item['msg']} (got {got!r})")
    return f"{source}: " + "; ".join(lines)


def _field_names(cls: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    model: Any = cls
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(getattr(model, "model_fields", {}))
