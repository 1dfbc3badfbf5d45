"""Recommendation files, written a batch at a time and atomically (the file appears whole when
the last batch is written, or not at all).

- ``.csv`` and ``.parquet``: one row per recommendation: the user (or sequence number), its
  rank from 1, the item and its score;
- ``.jsonl``: one line per user (or sequence): ``{"user": ..., "items": [...], "scores": [...]}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..atomic_io import atomic_write_bytes

FORMATS = (".csv", ".parquet", ".jsonl")


def check_output_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {path}: the suffix names the format; expected one of {', '.join(FORMATS)}")
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; name a file ({', '.join(FORMATS)})")
    return path


def long_table(key_name: str, keys: pa.Array, items: pa.Array, scores: np.ndarray, counts: np.ndarray) -> pa.Table:
    """One row per recommendation: ``keys[r]`` repeated ``counts[r]`` times, ranks 1..counts[r];
    ``items`` and ``scores`` hold the rows' recommendations back to back."""
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    ranks = np.arange(len(rows)) - np.repeat(starts, counts) + 1
    return pa.table({key_name: keys.take(pa.array(rows)), "rank": pa.array(ranks.astype(np.int32)),
                     "item": items, "score": pa.array(scores.astype(np.float32))})


def _write_table_stream(path: Path, tables: Iterable[pa.Table], handle: BinaryIO) -> None:
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = (pq.ParquetWriter(handle, table.schema) if path.suffix.lower() == ".parquet"
                          else pa_csv.CSVWriter(handle, table.schema))
            writer.write_table(table)
        if writer is None:
            raise ValueError(f"{path}: no recommendation to write (no row had a candidate item left); "
                             "the file is not written")
    finally:
        if writer is not None:
            writer.close()


def _write_jsonl(path: Path, key_name: str, tables: Iterable[pa.Table], handle: BinaryIO) -> None:
    written = 0
    for table in tables:
        written += len(table)
        keys, items, scores = (table.column(name).to_pylist() for name in (key_name, "item", "score"))
        ranks = table.column("rank").to_numpy()
        starts = np.flatnonzero(ranks == 1).tolist() + [len(ranks)]
        for start, end in zip(starts[:-1], starts[1:]):
            handle.write((json.dumps({key_name: keys[start], "items": items[start:end],
                                      "scores": scores[start:end]}) + "\n").encode())
    if not written:
        raise ValueError(f"{path}: no recommendation to write (no row had a candidate item left); "
                         "the file is not written")


def write_recommendations(path: Path, key_name: str, tables: Iterable[pa.Table]) -> None:
    """Writes the long tables ``tables`` (see :func:`long_table`) to ``path`` in its format.
    A key without recommendations (no candidate left) has no row (CSV, Parquet) or no line."""
    write: Callable[[BinaryIO], None]
    if path.suffix.lower() == ".jsonl":
        write = lambda handle: _write_jsonl(path, key_name, tables, handle)  # noqa: E731
    else:
        write = lambda handle: _write_table_stream(path, tables, handle)  # noqa: E731
    atomic_write_bytes(path, write)
