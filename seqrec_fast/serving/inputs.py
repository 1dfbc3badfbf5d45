"""The files ``seqrec-fast recommend`` reads: a list of users, or new sequences.

- users (``--users``): a text file, one original user id per line (blank lines are skipped);
- sequences (``--sequences``): a text file, one sequence per line, its original item ids
  oldest first, separated by spaces, tabs or commas; or a Parquet file with one column of lists
  of item ids. Sequences are numbered by their line (text) or row (Parquet), from 1.

A file that cannot be read as such is refused with its name and line; ids that are no user or
item of the dataset are the caller's to handle (unknown items are skipped and reported, an
unknown user is an error)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..data.errors import DataFormatError

_SEPARATORS = re.compile(r"[\s,]+")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a UTF-8 text file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFormatError(f"{path} line {number}: not UTF-8 text; expected one "
                                      "sequence or id per line") from None
            if "\0" in line:
                raise DataFormatError(f"{path} line {number}: holds a NUL byte: not a text file")
            yield number, line


def read_user_ids(path: str | Path) -> tuple[list[int], list[str]]:
    """(line numbers, user ids as text) of a users file, one id per line."""
    path = Path(path)
    numbers, ids = [], []
    for number, line in _text_lines(path):
        token = line.strip()
        if not token:
            continue
        if _SEPARATORS.search(token):
            raise DataFormatError(f"{path} line {number}: {token!r} is not one user id; expected one id per line")
        numbers.append(number)
        ids.append(token)
    if not ids:
        raise DataFormatError(f"{path}: no user ids; expected one original user id per line")
    return numbers, ids


def read_sequences(path: str | Path, batch_size: int) -> Iterator[tuple[list[int], list[list]]]:
    """Batches of (sequence numbers, sequences of item ids) from a text or Parquet file."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        yield from _parquet_sequences(path, batch_size)
        return
    numbers: list[int] = []
    sequences: list[list] = []
    for number, line in _text_lines(path):
        numbers.append(number)
        sequences.append([token for token in _SEPARATORS.split(line.strip()) if token])
        if len(numbers) == batch_size:
            yield numbers, sequences
            numbers, sequences = [], []
    if numbers:
        yield numbers, sequences


def _sequence_column(path: Path, schema: pa.Schema) -> str:
    lists = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    if len(lists) != 1:
        shown = ", ".join(f"{f.name} ({f.type})" for f in schema) or "none"
        found = "no column" if not lists else f"{len(lists)} columns"
        raise DataFormatError(f"{path}: expected one column of lists of item ids, found {found} of lists; "
                              f"columns: {shown}")
    value_type = schema.field(lists[0]).type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
        raise DataFormatError(f"{path}: column {lists[0]!r} holds lists of {value_type}; expected lists of "
                              "integer or string item ids")
    return lists[0]


def _parquet_sequences(path: Path, batch_size: int) -> Iterator[tuple[list[int], list[list]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from None
    column = _sequence_column(path, source.schema_arrow)
    first = 1
    for batch in source.iter_batches(batch_size=batch_size, columns=[column]):
        values = batch.column(0)
        if values.null_count:
            row = values.is_null().to_pylist().index(True)
            raise DataFormatError(f"{path} row {first + row}: column {column!r} is null; expected a list of item ids")
        if values.flatten().null_count:
            nulls = [i for i, sequence in enumerate(values.to_pylist()) if None in sequence]
            raise DataFormatError(f"{path} row {first + nulls[0]}: column {column!r} holds a null item id")
        sequences = values.to_pylist()
        yield list(range(first, first + len(sequences))), sequences
        first += len(sequences)
