"""Building ``*Args`` from plain data: type coercion from the annotations, unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

import yaml

__all__ = ["ConfigError", "build", "to_dict"]


class ConfigError(ValueError):
    """One or more problems in a config; the message lists every one."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        where = f" in {source}" if source else ""
        super().__init__(
            f"{len(problems)} problem(s){where}:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """``value`` converted to the annotated type ``tp`` (strings from the command line too)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(value, inner, key, problems)
    if origin is list:
        if isinstance(value, str):
            text = value.strip()
            value = (
                yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v]
            )
        if not isinstance(value, list | tuple):
            problems.append(
                f"{key}: {value!r} is not a list; write [a, b] in YAML or a,b on the command line"
            )
            return None
        return [_coerce(v, args[0], f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            problems.append(f"{key}: {value!r} is not a mapping; write {{steps: 10}}")
            return None
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, str) and value.lower() in (
                "true",
                "yes",
                "1",
                "on",
                "false",
                "no",
                "0",
                "off",
            ):
                return value.lower() in ("true", "yes", "1", "on")
            if isinstance(value, bool):
                return value
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return (
                int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
            )
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        problems.append(f"{key}: {value!r} is not a valid {tp.__name__}")
        return None
    return value


def build(cls: type, data: dict[str, Any], prefix: str, problems: list[str]) -> Any:
    """An instance of the dataclass ``cls`` from ``data``, nested dataclasses included.

    Every unknown key and badly typed value is appended to ``problems`` (named by its dotted key
    under ``prefix``) and left at its default, so a caller can report them all at once.
    """
    hints, names = _hints(cls), {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in (data or {}).items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in names:
            close = difflib.get_close_matches(key, list(names), n=1)
            hint = (
                f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
                if close
                else f"; known keys: {', '.join(names)}"
            )
            problems.append(f"{dotted}: unknown key{hint}")
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                problems.append(
                    f"{dotted}: expected a mapping of {tp.__name__} keys, got {value!r}"
                )
                continue
            kwargs[key] = build(tp, value, dotted, problems)
        else:
            before = len(problems)
            coerced = _coerce(value, tp, dotted, problems)
            if len(problems) == before:
                kwargs[key] = coerced
    return cls(**kwargs)


def to_dict(args: Any) -> dict[str, Any]:
    """A config as plain JSON-able data."""
    return dataclasses.asdict(args)
