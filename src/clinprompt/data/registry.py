"""The dataset registry: every dataset is registered by name where it is defined.

Lookups suggest close matches. The data root (where native files live) comes from an explicit
argument, else ``$CLINPROMPT_DATA_ROOT``, else ``../shared/data`` relative to the working directory
when it exists.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from clinprompt.data.spec import DatasetSpec, Records

__all__ = [
    "DATA_ROOT_ENV",
    "DataRootError",
    "UnknownDatasetError",
    "get_dataset",
    "list_datasets",
    "load_splits",
    "register",
    "resolve_data_root",
]

DATA_ROOT_ENV = "CLINPROMPT_DATA_ROOT"
_REGISTRY: dict[str, DatasetSpec] = {}
_LOADED = False


class UnknownDatasetError(KeyError):
    """A dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class DataRootError(FileNotFoundError):
    """The data root (or a dataset's folder under it) is missing."""


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry (names are unique)."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
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
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownDatasetError(
        f"unknown dataset {name!r}.{hint} Available: {', '.join(sorted(_REGISTRY))}"
    )


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


def load_splits(name: str, data_root: str | Path | None = None) -> dict[str, Records]:
    """Load every split of a registered dataset as records."""
    spec = get_dataset(name)
    if spec.loader is None:
        from clinprompt.tasks.records import read_records  # user datasets: JSONL per split

        return {split: read_records(path, spec) for split, path in spec.paths.items()}
    if spec.synthetic or spec.extra.get("standalone"):
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
