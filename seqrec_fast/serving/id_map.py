"""Original user and item ids <-> the dataset's indices (users 0..U-1, items 1..N).

Lookups go through each id's text form (``str(id)``), so that a token read from a file and a
value passed from Python (``7``, ``np.int64(7)`` or ``"7"`` for an integer id) find the same
entry; an integer id's text form is its canonical one, so ``"007"`` is not ``7``, as in the
readers (seqrec_fast.data.ids)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class IdMap:
    def __init__(self, originals: pa.Array | None, count: int, first: int):
        """``originals[i]`` is the original id of index ``first + i``; None (synthetic data)
        means each index is its own id."""
        if originals is None:
            originals = pa.array(np.arange(first, first + count, dtype=np.int64))
        if len(originals) != count:
            raise ValueError(f"id map holds {len(originals)} ids for {count} indices")
        self.originals = originals
        self.first = first
        self._keys = originals if pa.types.is_string(originals.type) else originals.cast(pa.string())

    def __len__(self) -> int:
        return len(self.originals)

    @property
    def is_integer(self) -> bool:
        return pa.types.is_integer(self.originals.type)

    def indices(self, values: Iterable) -> np.ndarray:
        """The index of each value (int64), -1 where it is no id of the map."""
        keys = pa.array([str(value) for value in values], type=pa.string())
        found = pc.index_in(keys, value_set=self._keys)
        return np.where(found.is_null().to_numpy(zero_copy_only=False), -1,
                        found.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) + self.first)

    def originals_of(self, indices: np.ndarray) -> pa.Array:
        """The original ids of ``indices`` (each in ``first .. first + len - 1``)."""
        return self.originals.take(pa.array(np.asarray(indices, dtype=np.int64) - self.first))
