"""Datasets: specs, the registry, native loaders, suites and collation."""

from clinprompt.data.registry import (
    DATA_ROOT_ENV,
    DataRootError,
    UnknownDatasetError,
    get_dataset,
    list_datasets,
    load_splits,
    register,
    resolve_data_root,
    resolve_dataset,
)
from clinprompt.data.spec import DatasetSpec, Records

__all__ = [
    "DATA_ROOT_ENV",
    "DataRootError",
    "DatasetSpec",
    "Records",
    "UnknownDatasetError",
    "get_dataset",
    "list_datasets",
    "load_splits",
    "register",
    "resolve_data_root",
    "resolve_dataset",
]
