"""A block of interactions checked and typed before the Rust core sees it, and its columns handed
to Rust without copying.

`check_block` turns every reader's block (CSV, Parquet, RecBole, MovieLens) into int64 or string
ids and int64 or float64 numbers, with dates as seconds since 1970 (UTC); an error names the row
through the reader's `where`."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataFormatError
from .ids import INT64_MAX, IdKinds, first_true, plain_column

_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_DATE = r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?Z?\s*$"
_SECONDS_PER_DAY = 86_400


def check_block(table: pa.Table, where: Callable[[int], str], first_row: int = 0, ids: IdKinds | None = None) -> pa.Table:
    """Checks a block and normalises its types (int64 or string ids, int64 or float64 numbers);
    `where(first_row + i)` names row i in errors; `ids` keeps the id kinds of earlier blocks."""
    ids = ids or IdKinds()

    def at(row: int) -> str:
        return where(first_row + row)

    for role in table.column_names:
        column = table.column(role)
        if column.null_count:
            row = first_true(pc.is_null(column))
            raise DataFormatError(f"{at(row)}: the {role} column is empty; every row needs a {role}")
    for index, role in enumerate(table.column_names):
        column = table.column(role)
        converted = ids.convert(column, role, at) if role in ("user", "item") else _numbers(column, role, at)
        table = table.set_column(index, role, converted)
    if "time" in table.column_names:
        time = table.column("time")
        bad = pc.less(time, 0)
        if pa.types.is_floating(time.type):
            bad = pc.or_(bad, pc.invert(pc.and_(pc.is_finite(time), pc.less(time, 2.0**63))))
        if pc.any(bad).as_py():
            row = first_true(bad)
            raise DataFormatError(f"{at(row)}: timestamp {time[row].as_py()!r} is not a finite number >= 0 below 2^63")
    return table


def _numbers(column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
    """int64 or float64 values; dates become seconds since 1970 (UTC), timestamps int64 in their
    unit."""
    column = plain_column(column, role, at)
    kind = column.type
    if pa.types.is_integer(kind):
        if kind == pa.uint64() and len(column) and pc.max(column).as_py() > INT64_MAX:
            if role != "time":
                return column.cast(pa.float64())
            row = first_true(pc.greater(column, pa.scalar(INT64_MAX, pa.uint64())))
            raise DataFormatError(f"{at(row)}: timestamp {column[row].as_py()!r} is not a finite number >= 0 below 2^63")
        return column.cast(pa.int64())
    if pa.types.is_floating(kind):
        return column.cast(pa.float64())
    if pa.types.is_date32(kind):
        return pc.multiply(column.cast(pa.int32()).cast(pa.int64()), _SECONDS_PER_DAY)
    if pa.types.is_date64(kind):
        return pc.divide(column.cast(pa.int64()), 1000)
    if pa.types.is_timestamp(kind):
        return column.cast(pa.int64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        numeric = pc.match_substring_regex(column, _NUMBER)
        if pc.all(numeric).as_py():
            return column.cast(pa.float64())
        return _dates(column, role, at, numeric)
    raise DataFormatError(f"{at(0)}: the {role} column has type {kind}; expected numbers")


def _dates(column: pa.ChunkedArray, role: str, at: Callable[[int], str], numeric: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column of dates (YYYY-MM-DD[ HH:MM[:SS]]) as seconds since 1970."""
    dated = pc.match_substring_regex(column, _DATE)
    if not pc.any(dated).as_py() or not pc.all(dated).as_py():
        row = first_true(pc.invert(dated) if pc.any(dated).as_py() else pc.invert(numeric))
        raise DataFormatError(f"{at(row)}: {role} {column[row].as_py()!r} is not a number or a date (YYYY-MM-DD[ HH:MM:SS]) "
                              f"like the other rows")
    try:
        return pc.utf8_trim_whitespace(column).cast(pa.timestamp("s")).cast(pa.int64())
    except pa.ArrowInvalid:
        for row, text in enumerate(column.to_pylist()):
            try:
                pa.scalar(text.strip()).cast(pa.timestamp("s"))
            except pa.ArrowInvalid:
                raise DataFormatError(f"{at(row)}: {role} {text!r} is not a valid date") from None
        raise


# -- handing columns to Rust without copying ----------------------------------------------------
def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def id_chunks(column: pa.ChunkedArray | pa.Array) -> list:
    """Zero-copy numpy views of each chunk: int64 arrays, or (offsets, utf8 bytes) for strings."""
    chunks = []
    for chunk in _chunks(column):
        if pa.types.is_integer(chunk.type):
            chunks.append(chunk.to_numpy(zero_copy_only=True))
            continue
        _validity, offsets_buffer, data_buffer = chunk.buffers()
        offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
        chunks.append((offsets, data))
    return chunks


def number_chunks(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    return [chunk.to_numpy(zero_copy_only=True) for chunk in _chunks(column)]
