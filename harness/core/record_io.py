"""Typed records as JSON: written strictly (null for NaN, never bare NaN), read back checked
against their field types, so a damaged or edited file is one line naming the field."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from harness.core.errors import ConfigError, one_line
from harness.core.store import Store, strict_dumps, write_json, write_text

R = TypeVar("R")


def save_record(path: Path, record: Any) -> None:
    write_json(path, asdict(record))


class BadRecord(ConfigError):
    """A record read back whose fields are missing or of the wrong type."""


def from_dict(cls: type[R], data: Any) -> R:
    """Rebuild a record (and its nested records) from its JSON form; BadRecord naming the field
    when a required one is missing or a value is not of its field's type."""
    return _record(cls, data, cls.__name__)


def _record(cls: type[R], data: Any, where: str) -> R:
    if not isinstance(data, dict):
        raise BadRecord(f"{where} is {_json_type(data)}, not an object")
    hints = get_type_hints(cls)
    kwargs = {f.name: _typed(hints[f.name], data[f.name], f"{where}.{f.name}")
              for f in fields(cls) if f.name in data}  # type: ignore[arg-type]
    missing = [f.name for f in fields(cls) if f.name not in data  # type: ignore[arg-type]
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise BadRecord(f"{where} lacks the field {missing[0]!r}")
    return cls(**kwargs)


def _typed(hint: Any, value: Any, where: str) -> Any:
    """A JSON value checked against its field's type, records (and lists of them) rebuilt."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, UnionType):
        if value is None and type(None) in args:
            return None
        for option in [a for a in args if a is not type(None)]:
            try:
                return _typed(option, value, where)
            except BadRecord:
                continue
    elif is_dataclass(hint):
        return _record(hint, value, where)
    elif origin is list and isinstance(value, list):
        return [_typed(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict and isinstance(value, dict):
        return {k: _typed(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    elif hint is float and value is None:  # strict JSON writes a NaN as null
        return math.nan
    elif hint in (str, bool) and isinstance(value, hint) or hint is int and type(value) is int:
        return value
    shown = getattr(hint, "__name__", None) if origin is None else None
    raise BadRecord(f"{where} is {_json_type(value)}, not {shown or str(hint).replace('typing.', '')}")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def load_card(store: Store, kind: str, key: str, cls: type[R]) -> R:
    """An artifact's card as its record, its seal verified; ConfigError naming the artifact and the
    field when the card is ill-typed."""
    try:
        return from_dict(cls, store.card(kind, key))
    except BadRecord as e:
        raise BadRecord(f"artifact {kind}/{key} in {store.root}: its {Store.MARKER}: {e}") from e


def load_record(path: Path, cls: type[R]) -> R:
    """A record read from a JSON file; ConfigError naming the file when unreadable or ill-typed."""
    try:
        return from_dict(cls, json.loads(Path(path).read_text()))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable {cls.__name__} ({one_line(e)})") from e


def write_jsonl(path: Path, rows: list[Any]) -> None:
    """One record per line (the per-sample results format)."""
    write_text(path, "".join(strict_dumps(asdict(r)) + "\n" for r in rows))


def read_jsonl(path: Path, cls: type[R]) -> list[R]:
    """Records, one a line; ConfigError naming the file and line when one is unreadable or ill-typed."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({one_line(e)})") from e
    rows = []
    for n, line in enumerate(lines, 1):
        if line:
            try:
                rows.append(from_dict(cls, json.loads(line)))
            except ValueError as e:
                raise ConfigError(f"{path}, line {n}: not a {cls.__name__} ({one_line(e)})") from e
    return rows
