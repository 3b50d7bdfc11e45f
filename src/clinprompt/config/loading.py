"""Loading: a profile name or YAML file (``base:`` profiles beneath it), dotted overrides, saving."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clinprompt.config.args import PROFILES, ExperimentArgs
from clinprompt.config.build import ConfigError, build, to_dict
from clinprompt.config.validation import validate

__all__ = ["load_config", "save_config"]


def _profile_path(name: str) -> Path:
    return Path(str(resources.files("clinprompt") / "configs" / f"{name}.yaml"))


def _read_yaml(source: str | Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of a profile name or file, with ``base:`` profiles merged beneath it."""
    text = str(source)
    path = _profile_path(text) if text in PROFILES else Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(
            [
                f"config {text!r}: no such file; pass a YAML path or a profile ({', '.join(PROFILES)})"
            ]
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: invalid YAML ({err})"]) from err
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys"])
    base = data.pop("base", None)
    if base is None:
        return data
    if str(base) in seen:
        raise ConfigError([f"{path}: base {base!r} includes itself"])
    if str(base) not in PROFILES:
        base = (path.parent / str(base)) if not Path(str(base)).is_absolute() else base
    return _merge(_read_yaml(base, (*seen, text)), data)


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(data: dict[str, Any], item: str, problems: list[str]) -> None:
    if "=" not in item:
        problems.append(f"override {item!r}: expected key=value, e.g. train.lr=3e-2")
        return
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            problems.append(f"override {item!r}: {part} is not a section")
            return
    node[parts[-1]] = value


def load_config(
    source: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentArgs:
    """Load a profile name or YAML file (or defaults when None), apply dotted overrides, validate.

    Raises:
        ConfigError: listing every unknown key, badly typed value and invalid setting at once.
    """
    data = _read_yaml(source) if source is not None else {}
    problems: list[str] = []
    for item in overrides:
        _apply_override(data, item, problems)
    args = build(ExperimentArgs, data, "", problems)
    problems += validate(args)
    if problems:
        raise ConfigError(problems, str(source or "the defaults"))
    return args


def save_config(args: ExperimentArgs, path: str | Path) -> Path:
    """Write the resolved config as JSON (beside every output)."""
    # Imported here: artifacts loads torch (safetensors), and the command line imports config
    # to declare its options, so `clinprompt --help` stays fast.
    from clinprompt.artifacts import write_json

    return write_json(path, to_dict(args))
