"""`Dataset`: time-ordered user sequences in CSR form over the Rust core, with its split, its
binary cache and its batch loaders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _loader
from .errors import CacheError
from .loaders import EvalLoader, EvalLoaderConfig, TrainLoader, TrainLoaderConfig
from .source import warn_if_source_changed

log = logging.getLogger("seqrec_fast.data")

CACHE_FILE = "dataset.bin"
SPLITS = ("leave_one_out", "temporal")


def _ids_to_arrow(ids: Any) -> pa.Array | None:
    """The Rust id map (None, int64 array, or (offsets, utf8 bytes)) as an Arrow array."""
    if ids is None:
        return None
    if isinstance(ids, tuple):
        offsets, data = ids
        return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    return pa.array(ids)


class Dataset:
    """Interaction sequences: user u's items are `items[offsets[u]:offsets[u + 1]]` in time
    order; item ids are 1..n_items, 0 is padding and n_items + 1 the mask token."""

    def __init__(self, sequences: _loader.Sequences):
        self._sequences = sequences
        self.meta: dict[str, Any] = json.loads(sequences.meta) if sequences.meta else {}

    # -- shape -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta.get("name", "dataset")

    @property
    def n_users(self) -> int:
        return self._sequences.n_users

    @property
    def n_items(self) -> int:
        return self._sequences.n_items

    @property
    def n_interactions(self) -> int:
        return self._sequences.n_interactions

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    @property
    def split(self) -> str:
        return self.meta.get("split", {}).get("kind", "leave_one_out")

    # -- CSR arrays (read-only numpy views; memory-mapped after `load_dataset`) ----------------
    @property
    def offsets(self) -> np.ndarray:
        return self._sequences.offsets

    @property
    def items(self) -> np.ndarray:
        return self._sequences.items

    @property
    def times(self) -> np.ndarray:
        return self._sequences.times

    @property
    def train_end(self) -> np.ndarray:
        """Exclusive end (index into `items`) of each user's training sequence."""
        return self._sequences.train_end

    @property
    def valid_pos(self) -> np.ndarray:
        """Index into `items` of each user's validation target, -1 where the user has none."""
        return self._sequences.valid_pos

    @property
    def test_pos(self) -> np.ndarray:
        """Index into `items` of each user's test target, -1 where the user has none."""
        return self._sequences.test_pos

    @property
    def is_memory_mapped(self) -> bool:
        return self._sequences.is_mapped

    def sequence(self, user: int) -> np.ndarray:
        """All items of one user, in time order."""
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def train_sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.train_end[user]]

    def user_ids(self) -> pa.Array | None:
        """Original user id of each user index (None for synthetic data)."""
        return _ids_to_arrow(self._sequences.user_ids)

    def item_ids(self) -> pa.Array | None:
        """Original item id of item ids 1..n_items (entry i belongs to item id i + 1)."""
        return _ids_to_arrow(self._sequences.item_ids)

    def item_counts(self) -> np.ndarray:
        """Training-split popularity, int64 [n_items + 1]; index 0 (padding) is 0."""
        return self._sequences.item_counts()

    def stats(self) -> dict[str, Any]:
        lengths = np.diff(self.offsets)
        train, valid, test = self._sequences.split_sizes()
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "sequence_length": {
                "min": int(lengths.min()) if len(lengths) else 0,
                "median": float(np.median(lengths)) if len(lengths) else 0.0,
                "mean": float(lengths.mean()) if len(lengths) else 0.0,
                "max": int(lengths.max()) if len(lengths) else 0,
            },
            "split": self.split,
            "train_interactions": train,
            "valid_targets": valid,
            "test_targets": test,
        }

    # -- splits and persistence ----------------------------------------------------------------
    def with_split(self, split: str = "leave_one_out", valid_fraction: float = 0.1, test_fraction: float = 0.1) -> "Dataset":
        """The same interactions under another split (shares the arrays)."""
        sequences = self._sequences.resplit(split, valid_fraction, test_fraction)
        meta = dict(self.meta, split=split_meta(split, valid_fraction, test_fraction))
        return Dataset(sequences.with_meta(json.dumps(meta)))

    def save(self, out_dir: str | Path) -> Path:
        """Writes `out_dir/dataset.bin` atomically; returns its path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)
        path = out_dir / CACHE_FILE
        self._sequences.with_meta(json.dumps(self.meta)).save(str(path))
        return path

    # -- batches ---------------------------------------------------------------------------------
    def train_loader(self, **options: Any) -> TrainLoader:
        """Training batches; options are the fields of `TrainLoaderConfig`."""
        return TrainLoader(self._sequences, TrainLoaderConfig(**options))

    def eval_loader(self, **options: Any) -> EvalLoader:
        """Evaluation batches; options are the fields of `EvalLoaderConfig`."""
        return EvalLoader(self._sequences, EvalLoaderConfig(**options))

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, interactions={self.n_interactions})"


def split_meta(kind: str, valid_fraction: float, test_fraction: float) -> dict[str, Any]:
    if kind not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {kind!r}")
    if kind == "leave_one_out":
        return {"kind": kind}
    return {"kind": kind, "valid_fraction": valid_fraction, "test_fraction": test_fraction}


def dataset_from_sequences(sequences: _loader.Sequences, meta: dict[str, Any]) -> Dataset:
    """Attaches metadata (name, source, split, ...) to freshly built sequences."""
    return Dataset(sequences.with_meta(json.dumps(meta)))


def load_dataset(path: str | Path, verify: bool = True, check_source: bool = True) -> Dataset:
    """Memory-maps a dataset saved by `Dataset.save` / `seqrec-fast data prepare|synth`.
    `path` is the directory or the `dataset.bin` file. `verify` checks every checksum (cheap);
    `check_source` warns when the file it was prepared from changed since."""
    path = Path(path)
    file = path / CACHE_FILE if path.is_dir() else path
    if not file.is_file():
        raise CacheError(f"{file}: no dataset cache here; create one with `seqrec-fast data prepare` or `data synth`")
    dataset = Dataset(_loader.load_cache(str(file), verify))
    if check_source:
        warn_if_source_changed(file, dataset.meta)
    return dataset


def remove_stale_temporaries(out_dir: Path) -> None:
    """Deletes `dataset.bin.tmp-PID` files whose writer is dead (killed mid-write); a live
    writer's temporary is left to it."""
    for tmp in out_dir.glob(f"{CACHE_FILE}.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        log.info("%s: removed, left by a killed write", tmp)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True
