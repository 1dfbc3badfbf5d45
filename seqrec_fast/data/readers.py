"""Readers for interaction logs (pyarrow): CSV/TSV, Parquet, RecBole atomic `.inter` files and
the MovieLens formats (ml-100k `u.data`, ml-1m/10m `ratings.dat`, ml-20m/25m `ratings.csv`).

Files are streamed in blocks: every block is checked (so the Rust core only sees valid values)
and handed to a sink as a table with columns user, item and optionally time and rating, so a
20M-row file never has to sit in memory whole next to what is built from it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import DataFormatError

FORMATS = ("auto", "csv", "parquet", "recbole", "movielens")

# Column names recognised when no mapping is given (compared case-insensitively).
_CANDIDATES = {
    "user": ("user_id", "userid", "user", "uid", "visitorid", "customer_id"),
    "item": ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id"),
    "time": ("timestamp", "time", "ts", "datetime", "date"),
    "rating": ("rating", "score", "stars"),
}
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_BLOCK_SIZE = 1 << 20  # small blocks: pyarrow reads ahead, and the read-ahead is counted in blocks
_PARQUET_BATCH_ROWS = 1 << 20
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'")


@dataclass(frozen=True)
class ColumnMap:
    """Names of the input columns; None means: recognise a usual name (user_id, userId, ...).
    `time` may be absent from the file: then file order is time order."""

    user: str | None = None
    item: str | None = None
    time: str | None = None
    rating: str | None = None


@dataclass(frozen=True)
class Location:
    """Names a data row (counted from 0) the way the user finds it in the file."""

    path: Path
    #: line number of the first data row (CSV-like files) or None (Parquet, arrays)
    first_line: int | None

    def __call__(self, row: int) -> str:
        place = f"line {row + self.first_line}" if self.first_line is not None else f"row {row}"
        return f"{self.path}: {place}"


class InteractionSink(Protocol):
    """Receives checked blocks of a file in order."""

    def add(self, table: pa.Table, first_row: int) -> None: ...

    def reset(self) -> None:
        """Forget what was added: the file is read again from the start."""


@dataclass
class Interactions:
    """A whole checked table (columns user, item and, when present, time and rating)."""

    table: pa.Table
    location: Location


class _TypeChanged(Exception):
    """A column inferred as numeric from the first block holds text further down."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".inter"):
        return "recbole"
    if name == "u.data" or name.endswith((".dat", ".data")):
        return "movielens"
    return "csv"


def read_into(
    sink: InteractionSink,
    path: str | Path,
    format: str = "auto",
    columns: ColumnMap = ColumnMap(),
    delimiter: str | None = None,
    with_rating: bool = False,
) -> Location:
    """Streams the checked blocks of an interaction file into `sink`; returns how rows are named.
    Only the needed columns are parsed; `with_rating` also reads the rating column."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty; expected interaction rows")
    kind = detect_format(path) if format == "auto" else format
    location, blocks = _plan(path, kind, columns, delimiter, with_rating)
    text_columns: dict[str, pa.DataType] = {}
    for _attempt in range(8):  # each retry reads one more column as text
        try:
            rows = 0
            for table in blocks(text_columns):
                table = check_block(table, location, rows)
                sink.add(table, rows)
                rows += table.num_rows
                # Arrow's allocator keeps freed blocks; give them back as the sink's memory grows.
                pa.default_memory_pool().release_unused()
        except _TypeChanged as change:
            text_columns[change.column] = pa.string()
            sink.reset()
            continue
        if rows == 0:
            raise DataFormatError(f"{path}: no interaction rows (only a header?)")
        return location
    raise DataFormatError(f"{path}: could not settle the column types")


class _Collect:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def add(self, table: pa.Table, first_row: int) -> None:
        self.tables.append(table)

    def reset(self) -> None:
        self.tables.clear()


def read_interactions(
    path: str | Path,
    format: str = "auto",
    columns: ColumnMap = ColumnMap(),
    delimiter: str | None = None,
    with_rating: bool = False,
) -> Interactions:
    """Reads and checks a whole interaction file into one table."""
    collect = _Collect()
    location = read_into(collect, path, format, columns, delimiter, with_rating)
    return Interactions(pa.concat_tables(collect.tables), location)


Blocks = Callable[[dict], Iterator[pa.Table]]


def _plan(path: Path, kind: str, columns: ColumnMap, delimiter: str | None, with_rating: bool) -> tuple[Location, Blocks]:
    """How to read the file: its row naming and a function of the columns to force to text that
    yields blocks with role-named columns."""
    if kind == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from None
        roles = _resolve(parquet.schema_arrow.names, columns, path, with_rating)

        def parquet_blocks(_text: dict) -> Iterator[pa.Table]:
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=list(roles.values())):
                yield _roles(pa.Table.from_batches([batch]), roles)

        return Location(path, None), parquet_blocks
    if kind == "recbole":
        names, types = _recbole_header(path)
        roles = _resolve(names, columns, path, with_rating)
        options = dict(skip_rows=1, column_names=names)
        return Location(path, 2), lambda text: _csv_blocks(path, "\t", options, {**types, **text}, roles)
    if kind == "movielens" and not path.name.lower().endswith(".csv"):
        return _movielens_plan(path, delimiter, columns, with_rating)
    sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    roles = _resolve(_column_names(path, sep, {}), columns, path, with_rating)
    return Location(path, 2), lambda text: _csv_blocks(path, sep, {}, dict(text), roles)


def _roles(table: pa.Table, roles: dict[str, str]) -> pa.Table:
    """The table with its columns renamed to user, item, time, rating."""
    return pa.table({role: table.column(name) for role, name in roles.items()})


# -- format readers ----------------------------------------------------------------------------
def _csv_blocks(path: Path, delimiter: str, read_options: dict, types: dict, roles: dict[str, str]) -> Iterator[pa.Table]:
    """Streams a CSV-like file in large blocks (a fraction of `read_csv`'s peak memory)."""
    convert = pacsv.ConvertOptions(column_types=types, null_values=[""], include_columns=list(roles.values()))
    # No read-ahead thread: blocks are parsed as they are consumed, so they cannot pile up.
    options = pacsv.ReadOptions(block_size=_BLOCK_SIZE, use_threads=False, **read_options)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        reader = pacsv.open_csv(path, read_options=options, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield _roles(pa.Table.from_batches([batch]), roles)
    except pa.ArrowInvalid as error:
        message = str(error)
        if "Empty CSV file" in message:
            raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
        match = _CONVERSION.search(message)
        if not match:
            raise DataFormatError(f"{path}: {message}") from None
        # The index counts the file's columns.
        raise _TypeChanged(_column_names(path, delimiter, read_options)[int(match.group(1))]) from None


def _column_names(path: Path, delimiter: str, read_options: dict) -> list[str]:
    if read_options.get("column_names"):
        return list(read_options["column_names"])
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except pa.ArrowInvalid as error:
        if "Empty CSV file" in str(error):
            raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
        raise DataFormatError(f"{path}: {error}") from None
    return list(reader.schema.names)


def _recbole_header(path: Path) -> tuple[list[str], dict[str, pa.DataType]]:
    """RecBole atomic file: a tab-separated header of `name:type` fields (token, float, ...)."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    names, types = [], {}
    for field in header:
        name, _, kind = field.partition(":")
        if not kind:
            raise DataFormatError(f"{path}: line 1: header field {field!r} lacks a type; expected name:type such as user_id:token")
        names.append(name)
        if kind in ("token", "token_seq"):
            types[name] = pa.string()
        elif kind == "float":
            types[name] = pa.float64()
    return names, types


def _movielens_plan(path: Path, delimiter: str | None, columns: ColumnMap, with_rating: bool) -> tuple[Location, Blocks]:
    """ml-100k u.data (tab separated) and ml-1m/ml-10m ratings.dat (`::` separated), no header:
    user, item, rating, timestamp."""
    with open(path, encoding="latin-1") as handle:
        first = handle.readline()
    names = ["user_id", "item_id", "rating", "timestamp"]
    roles = _resolve(names, columns, path, with_rating)
    if "::" in first:
        # pyarrow splits on one character: "a::b" is a, (empty), b, so field i is column 2i.
        if first.count("::") != 3:
            raise DataFormatError(f"{path}: line 1: expected UserID::MovieID::Rating::Timestamp")
        raw = [f"f{i}" for i in range(7)]
        file_roles = {role: raw[2 * names.index(name)] for role, name in roles.items()}
        return Location(path, 1), lambda text: _csv_blocks(path, ":", dict(column_names=raw), dict(text), file_roles)
    options = dict(column_names=names)
    return Location(path, 1), lambda text: _csv_blocks(path, delimiter or "\t", options, dict(text), roles)


# -- column selection and checks ---------------------------------------------------------------
def _find(names: list[str], role: str, given: str | None, path: Path, required: bool) -> str | None:
    if given is not None:
        if given not in names:
            raise DataFormatError(f"{path}: no column {given!r} (for {role}); the file has columns {names}")
        return given
    lowered = {name.lower(): name for name in names}
    for candidate in _CANDIDATES[role]:
        if candidate in lowered:
            return lowered[candidate]
    if required:
        raise DataFormatError(
            f"{path}: no {role} column; expected one named like {list(_CANDIDATES[role])} or a column mapping "
            f"(--{role}-col); the file has columns {names}"
        )
    return None


def _resolve(names: list[str], columns: ColumnMap, path: Path, with_rating: bool) -> dict[str, str]:
    """Which file column plays which role (user, item, time, rating)."""
    roles = {
        "user": _find(names, "user", columns.user, path, required=True),
        "item": _find(names, "item", columns.item, path, required=True),
        "time": _find(names, "time", columns.time, path, required=False),
    }
    if with_rating:
        roles["rating"] = _find(names, "rating", columns.rating, path, required=True)
    return {role: name for role, name in roles.items() if name is not None}


def _first(mask: pa.ChunkedArray) -> int:
    return int(pc.index(mask, True).as_py())


def check_block(table: pa.Table, where: Callable[[int], str], first_row: int = 0) -> pa.Table:
    """Checks a block and normalises its types (int64 or string ids, int64 or float64 numbers);
    `where(first_row + i)` names row i in errors."""
    def at(row: int) -> str:
        return where(first_row + row)

    for role in table.column_names:
        column = table.column(role)
        if column.null_count:
            row = _first(pc.is_null(column))
            raise DataFormatError(f"{at(row)}: the {role} column is empty; every row needs a {role}")
    for index, role in enumerate(table.column_names):
        convert = _ids if role in ("user", "item") else _numbers
        table = table.set_column(index, role, convert(table.column(role), role, at))
    if "time" in table.column_names:
        time = table.column("time")
        bad = pc.less(time, 0)
        if pa.types.is_floating(time.type):
            bad = pc.or_(bad, pc.invert(pc.is_finite(time)))
        if pc.any(bad).as_py():
            row = _first(bad)
            raise DataFormatError(f"{at(row)}: timestamp {time[row].as_py()!r} is not a finite number >= 0")
    return table


def _ids(column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _ids(column.cast(kind.value_type), role, at)
    if pa.types.is_integer(kind):
        return column.cast(pa.int64()) if kind != pa.int64() else column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    if pa.types.is_floating(kind):
        whole = pc.equal(pc.floor(column), column)
        if not pc.all(whole).as_py():
            row = _first(pc.invert(whole))
            raise DataFormatError(f"{at(row)}: {role} id {column[row].as_py()!r} is not a whole number or a string")
        return column.cast(pa.int64())
    raise DataFormatError(f"{at(0)}: the {role} column has type {kind}; expected integer or string ids")


def _numbers(column: pa.ChunkedArray, role: str, at: Callable[[int], str]) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_integer(kind):
        return column.cast(pa.int64())
    if pa.types.is_floating(kind):
        return column.cast(pa.float64())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return column.cast(pa.int64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        numeric = pc.match_substring_regex(column, _NUMBER)
        if not pc.all(numeric).as_py():
            row = _first(pc.invert(numeric))
            raise DataFormatError(f"{at(row)}: {role} {column[row].as_py()!r} is not a number")
        return column.cast(pa.float64())
    raise DataFormatError(f"{at(0)}: the {role} column has type {kind}; expected numbers")


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
