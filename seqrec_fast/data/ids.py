"""User and item ids as integers or strings, the same kind across all blocks of a file: a column
with a declared type (Parquet, a RecBole `:token`) keeps it; a text column (CSV/TSV, MovieLens)
is read as integers while every value is an integer written canonically (no leading zeros, sign
or spaces, within 64 bits), else as strings, so `007` and `7` stay two ids. `id_type` "string"
or "int" forces one kind."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataFormatError

ID_TYPES = ("auto", "string", "int")
INT64_MAX = 2**63 - 1
_INTEGER = r"^\s*[-+]?\d+\s*$"


class IdsAreText(Exception):
    """An id column read as integers so far holds a value that is not a canonical integer."""

    def __init__(self, role: str):
        super().__init__(role)
        self.role = role


def first_true(mask: pa.ChunkedArray) -> int:
    return int(pc.index(mask, True).as_py())


class IdKinds:
    """Whether each id column is read as integers or strings, kept the same across the blocks of
    one read: `id_type` "int" or "string" forces it; "auto" keeps a declared type, and reads an
    untyped text column (`untyped` roles) as integers while every value is a canonical integer.
    A text value after integer blocks raises `IdsAreText`: the read restarts with that role in
    `text_roles`."""

    def __init__(self, id_type: str = "auto", untyped: frozenset[str] = frozenset(), text_roles: set[str] = frozenset()):
        self.id_type, self.untyped, self.text_roles = id_type, untyped, text_roles
        self.kinds: dict[str, str] = {}

    def convert(self, column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
        column = plain_column(column, role, at)
        if self.id_type == "int":
            return _as_integers(column, role, at)
        as_text = self.id_type == "string" or role in self.text_roles
        natural = _natural_ids(column, role, at, parse_text=role in self.untyped and not as_text)
        kind = "string" if as_text or not pa.types.is_integer(natural.type) else "int"
        seen = self.kinds.setdefault(role, kind)
        if seen == "int" and kind == "string":
            raise IdsAreText(role)
        if kind == "string" and pa.types.is_integer(natural.type):
            return natural.cast(pa.string())
        return natural


def plain_column(column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
    """The column dictionary-decoded, with binary that is valid UTF-8 as strings; other binary is refused."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return plain_column(column.cast(kind.value_type), role, at)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        for row, value in enumerate(column.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise DataFormatError(f"{at(row)}: the {role} column is not valid UTF-8 text; pass the file's "
                                      f"encoding (--encoding, e.g. latin-1)") from None
        return column.cast(pa.large_string() if pa.types.is_large_binary(kind) else pa.string())
    return column


def _natural_ids(column: pa.ChunkedArray, role: str, at: Callable[[int], str], parse_text: bool) -> pa.ChunkedArray:
    """int64 or string ids as the column's type says (`parse_text`: canonical integers in text
    become int64); unsigned values beyond int64 become strings."""
    kind = column.type
    if pa.types.is_integer(kind):
        if kind == pa.uint64() and len(column) and pc.max(column).as_py() > INT64_MAX:
            return column.cast(pa.string())
        return column.cast(pa.int64()) if kind != pa.int64() else column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if parse_text:
            integers = _canonical_integers(column)
            if integers is not None:
                return integers
        return column
    if pa.types.is_floating(kind):
        whole = pc.and_(pc.is_finite(column), pc.equal(pc.floor(column), column))
        fits = pc.and_(pc.greater_equal(column, -(2.0**63)), pc.less(column, 2.0**63))
        ok = pc.and_(whole, fits)
        if not pc.all(ok).as_py():
            row = first_true(pc.invert(ok))
            raise DataFormatError(f"{at(row)}: {role} id {column[row].as_py()!r} is not a whole number (within 64 bits) or a string")
        return column.cast(pa.int64())
    raise DataFormatError(f"{at(0)}: the {role} column has type {kind}; expected integer or string ids")


def _canonical_integers(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The text column as int64 if every value is an integer written as it prints (no leading
    zeros, sign or spaces; within 64 bits), else None."""
    try:
        integers = column.cast(pa.int64())
    except pa.ArrowInvalid:
        return None
    for chunk in column.chunks:
        if not len(chunk):
            continue
        _validity, offsets_buffer, data_buffer = chunk.buffers()
        offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        starts, ends = offsets[:-1], offsets[1:]
        first, last = data[starts], data[ends - 1]
        second = data[np.minimum(starts + 1, ends - 1)]
        digit = lambda byte: (byte >= ord("0")) & (byte <= ord("9"))  # noqa: E731
        longer = ends - starts > 1
        # The cast accepted the value, so its middle holds digits; its ends must too, with no
        # leading zero ("07", "-0", "0x7") and a sign only as a leading minus.
        bad = ~digit(last) | ((first == ord("0")) & longer) | ~(digit(first) | (first == ord("-")))
        bad |= (first == ord("-")) & (second == ord("0"))
        if bad.any():
            return None
    return integers


def _as_integers(column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
    """id_type "int": every id an integer within 64 bits (text may carry zeros, a sign, spaces)."""
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        natural = _natural_ids(column, role, at, parse_text=False)
        if not pa.types.is_integer(natural.type):
            values = column.to_pylist()
            row = next(i for i, v in enumerate(values) if v > INT64_MAX)
            raise DataFormatError(f"{at(row)}: {role} id {values[row]!r} does not fit a 64-bit integer; "
                                  f"use id_type 'string' (--id-type string)")
        return natural
    trimmed = pc.utf8_trim_whitespace(column)
    integer = pc.match_substring_regex(trimmed, _INTEGER)
    if not pc.all(integer).as_py():
        row = first_true(pc.invert(integer))
        raise DataFormatError(f"{at(row)}: {role} id {column[row].as_py()!r} is not an integer; expected integer ids "
                              f"with id_type 'int' (--id-type int)")
    values = pc.replace_substring_regex(trimmed, r"^\+", "")
    try:
        return values.cast(pa.int64())
    except pa.ArrowInvalid:
        texts = column.to_pylist()
        row = next(i for i, text in enumerate(texts) if not -INT64_MAX - 1 <= int(text) <= INT64_MAX)
        raise DataFormatError(f"{at(row)}: {role} id {texts[row]!r} does not fit a 64-bit integer; "
                              f"use id_type 'string' (--id-type string)") from None


def check_id_type(id_type: str) -> str:
    if id_type not in ID_TYPES:
        raise DataFormatError(f"id_type (--id-type): expected one of {', '.join(ID_TYPES)}, got {id_type!r}")
    return id_type
