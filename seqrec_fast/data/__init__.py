"""Datasets and batches: readers (CSV/TSV, Parquet, RecBole, MovieLens), the Rust-built CSR
`Dataset` with its splits and cache, training/evaluation loaders, and synthetic data."""

from .dataset import Dataset, load_dataset
from .errors import CacheError, DataFormatError
from .loaders import EvalLoader, EvalLoaderConfig, TrainLoader, TrainLoaderConfig
from .prepare import PrepareOptions, from_interactions, prepare_dataset
from .readers import ColumnMap, read_interactions
from .synthetic import DEFAULT_PRESET, PRESETS, synthesize

__all__ = [
    "CacheError",
    "ColumnMap",
    "DEFAULT_PRESET",
    "DataFormatError",
    "Dataset",
    "EvalLoader",
    "EvalLoaderConfig",
    "PRESETS",
    "PrepareOptions",
    "TrainLoader",
    "TrainLoaderConfig",
    "from_interactions",
    "load_dataset",
    "prepare_dataset",
    "read_interactions",
    "synthesize",
]
