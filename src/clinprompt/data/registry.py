"""The dataset registry: every dataset is registered by name where it is defined.

Lookups suggest close matches. :func:`resolve_dataset` is the one place a command turns what the
user typed into a dataset: a registered name, or the path of a dataset config (``.yaml``/``.yml``,
:mod:`clinprompt.data.user`), which is loaded and registered under its ``name``. The data root
(where native files live) comes from an explicit argument, else ``$CLINPROMPT_DATA_ROOT``, else
``../shared/data`` relative to the working directory when it exists.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from clinprompt.data.spec import DatasetSpec, Records

__all__ = [
    "DATA_ROOT_ENV",
    "CONFIG_SUFFIXES",
    "DataRootError",
    "UnknownDatasetError",
    "get_dataset",
    "is_config_path",
    "list_datasets",
    "load_splits",
    "needs_data_root",
    "register",
    "resolve_data_root",
    "resolve_dataset",
]

DATA_ROOT_ENV = "CLINPROMPT_DATA_ROOT"
CONFIG_SUFFIXES = (".yaml", ".yml")
_REGISTRY: dict[str, DatasetSpec] = {}
_LOADED = False


class UnknownDatasetError(KeyError):
    """A dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class DataRootError(FileNotFoundError):
    """The data root (or a dataset's folder under it) is missing."""


def register(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add a dataset to the registry (names are unique; ``replace`` swaps a registered one)."""
    if not replace and spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    # Loader modules register their datasets on import.
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import clinprompt.data.loaders  # noqa: F401


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name``; unknown names list close matches and all names."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise UnknownDatasetError(_unknown(name))


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown dataset {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}"


def is_config_path(text: str | Path) -> bool:
    """Whether ``text`` names a dataset config file (by its suffix, ``.yaml``/``.yml``)."""
    return Path(str(text)).suffix.lower() in CONFIG_SUFFIXES


def resolve_dataset(
    name_or_path: str | Path, base: str | Path | None = None, *, register_it: bool = True
) -> DatasetSpec:
    """The dataset ``name_or_path`` stands for: a registered name, else a dataset config path.

    Every command that takes a dataset resolves it here, so a config path works wherever a name
    does. A path ends in ``.yaml``/``.yml``; a relative one is taken relative to ``base`` (a suite
    file's folder) when given, else to the working directory. The config is checked and
    registered under its ``name`` by :func:`clinprompt.data.user.load_dataset_config` (loading the
    same config again returns the same spec); ``register_it=False`` only checks and reads it
    (``clinprompt data validate``).

    Raises:
        UnknownDatasetError: neither a registered name nor an existing config file; lists close
            names and every registered one.
        RecordError: every problem of the config, each as ``config.yaml:LINE: field 'x': ...``,
            or its ``name`` is already taken by another dataset (both origins named).
    """
    _ensure_loaded()
    text = str(name_or_path)
    if text in _REGISTRY:
        return _REGISTRY[text]
    if not is_config_path(text):
        raise UnknownDatasetError(
            f"{_unknown(text)}. A dataset config path (a .yaml file: JSONL splits or "
            f"format: brat) is accepted too"
        )
    given = Path(text).expanduser()
    path = given if given.is_absolute() or base is None else Path(base) / given
    if not path.is_file():
        relative = f" relative to {base}" if base is not None and not given.is_absolute() else ""
        raise UnknownDatasetError(
            f"dataset config {text!r}{relative}: no such file ({path.resolve()})"
        )
    from clinprompt.data.user import load_dataset_config  # user configs register through here

    return load_dataset_config(path, register_it=register_it)


def needs_data_root(spec: DatasetSpec) -> bool:
    """Whether loading ``spec`` reads files under the data root.

    Built-in datasets of public corpora do; generated (SYNTHETIC) data and user configs, which
    name their own files, do not.
    """
    return not (spec.synthetic or spec.loader is None or spec.extra.get("standalone"))


def list_datasets(task_type: str | None = None, synthetic: bool | None = None) -> list[DatasetSpec]:
    """Registered datasets, sorted by name, optionally filtered."""
    _ensure_loaded()
    specs = sorted(_REGISTRY.values(), key=lambda s: s.name)
    if task_type is not None:
        specs = [s for s in specs if s.task_type == task_type]
    if synthetic is not None:
        specs = [s for s in specs if s.synthetic == synthetic]
    return specs


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """The data root: the argument, else ``$CLINPROMPT_DATA_ROOT``, else ``../shared/data``."""
    if data_root is not None:
        root = Path(data_root).expanduser()
        source = "the --data-root option"
    elif os.environ.get(DATA_ROOT_ENV):
        root = Path(os.environ[DATA_ROOT_ENV]).expanduser()
        source = f"${DATA_ROOT_ENV}"
    else:
        root = Path("../shared/data")
        source = "the default ../shared/data"
    if not root.is_dir():
        raise DataRootError(
            f"data root {root.resolve()} (from {source}) does not exist; pass --data-root DIR or set "
            f"{DATA_ROOT_ENV}=DIR to the folder holding the datasets (e.g. ../shared/data)"
        )
    return root


def load_splits(name: str | DatasetSpec, data_root: str | Path | None = None) -> dict[str, Records]:
    """Load every split of a registered dataset (by name), or of a :class:`DatasetSpec`, as records."""
    spec = name if isinstance(name, DatasetSpec) else get_dataset(name)
    name = spec.name
    if spec.loader is None:
        from clinprompt.tasks.records import read_records  # user datasets: JSONL per split

        return {split: read_records(path, spec) for split, path in spec.paths.items()}
    if not needs_data_root(spec):
        # generated data, and user configs that name their own files (BRAT folders), need no data root
        return spec.loader(Path("."))
    root = resolve_data_root(data_root)
    folder = root / spec.subdir if spec.subdir else root
    if not folder.exists():
        raise DataRootError(
            f"dataset {name!r}: looked for {folder.resolve()} under the data root {root.resolve()}; "
            f"it is missing (set --data-root or ${DATA_ROOT_ENV} to the folder that contains {spec.subdir or name}/)"
        )
    return spec.loader(root)
