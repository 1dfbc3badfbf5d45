"""What ``--data`` may name: a prepared dataset directory (holding ``dataset.bin``), a raw
interactions file or directory (prepared on the fly by the data API), or ``synthetic:PRESET``
(optionally ``synthetic:PRESET:SEED``) for the embedded generator."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SYNTHETIC_PREFIX = "synthetic:"
CACHE_FILE = "dataset.bin"
INTERACTION_PATTERNS = ("*.inter", "ratings.dat", "ratings.csv", "u.data", "*.parquet", "*.tsv")


def open_dataset(spec: str):
    from ..data import load_dataset, prepare_dataset, synthesize

    if not spec:
        raise ValueError("no dataset given: pass --data DIR (prepared or raw) or --data synthetic:PRESET")
    if spec.startswith(SYNTHETIC_PREFIX):
        preset, _, seed = spec[len(SYNTHETIC_PREFIX):].partition(":")
        try:
            return synthesize(preset, seed=int(seed) if seed else 0)
        except ValueError as error:
            raise ValueError(f"--data {spec}: {error}") from None
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {spec}: no such file or directory")
    if path.name == CACHE_FILE or (path / CACHE_FILE).is_file():
        return load_dataset(path)
    return prepare_dataset(interactions_file(path))


def interactions_file(path: Path) -> Path:
    """The raw interactions file a path names: the path itself, or the one interactions file in a
    directory (RecBole's NAME.inter, MovieLens' ratings / u.data, or a single CSV/TSV/Parquet)."""
    if path.is_file():
        return path
    candidates = sorted(p for pattern in INTERACTION_PATTERNS for p in path.glob(pattern))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ValueError(f"--data {path}: expected one interactions file ({', '.join(INTERACTION_PATTERNS)}) "
                         f"or a prepared dataset ({CACHE_FILE}); found {found}")
    return candidates[0]


def absolute_spec(spec: str) -> str:
    """``spec`` with a relative path made absolute, so that a run's record of its dataset means
    the same from any working directory."""
    if not spec or spec.startswith(SYNTHETIC_PREFIX):
        return spec
    return os.path.abspath(os.path.expanduser(spec))


def content_checksum(dataset) -> str:
    """A checksum of what training and evaluation read: the CSR arrays, the split and the
    original ids, not the metadata (which names files and times). The cache's own section
    checksums exist only in dataset.bin; this one is the same for a dataset whatever it was
    loaded or built from."""
    digest = hashlib.sha256()
    arrays = {"offsets": dataset.offsets, "items": dataset.items, "times": dataset.times,
              "train_end": dataset.train_end, "valid_pos": dataset.valid_pos, "test_pos": dataset.test_pos}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.size};".encode())
        digest.update(memoryview(array).cast("B"))
    for name, ids in (("user_ids", dataset.user_ids()), ("item_ids", dataset.item_ids())):
        digest.update(f"{name}:{'index' if ids is None else ids.type};".encode())
        for buffer in [] if ids is None else ids.buffers():
            if buffer is not None:
                digest.update(memoryview(buffer))
    return digest.hexdigest()[:16]
