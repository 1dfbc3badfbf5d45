"""Readers for interaction logs (pyarrow): CSV/TSV, Parquet, RecBole atomic `.inter` files and
the MovieLens formats (ml-100k `u.data`, ml-1m/10m `ratings.dat`, ml-20m/25m `ratings.csv`).
Every reader yields the same `Interactions`: a table with columns user, item and optionally
time and rating, checked so that the Rust core only sees valid values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
_BLOCK_SIZE = 16 << 20
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'")


@dataclass(frozen=True)
class ColumnMap:
    """Names of the input columns; None means: recognise a usual name (user_id, userId, ...).
    `time` may be absent from the file: then file order is time order."""

    user: str | None = None
    item: str | None = None
    time: str | None = None
    rating: str | None = None


@dataclass
class Interactions:
    """Columns "user", "item" and, when present, "time" and "rating"."""

    table: pa.Table | None
    path: Path
    #: line number of the first data row (CSV-like files) or None (Parquet: rows count from 0)
    first_line: int | None

    def where(self, row: int) -> str:
        """A row of the table as the user finds it in the file."""
        return f"line {row + self.first_line}" if self.first_line is not None else f"row {row}"


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".inter"):
        return "recbole"
    if name == "u.data" or name.endswith((".dat", ".data")):
        return "movielens"
    return "csv"


def read_interactions(
    path: str | Path,
    format: str = "auto",
    columns: ColumnMap = ColumnMap(),
    delimiter: str | None = None,
    with_rating: bool = False,
) -> Interactions:
    """Reads and checks an interaction file. `with_rating` also reads the rating column. Only
    the needed columns are parsed."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty; expected interaction rows")
    kind = detect_format(path) if format == "auto" else format
    if kind == "parquet":
        table, first_line = _read_parquet(path, columns, with_rating), None
    elif kind == "recbole":
        table, first_line = _read_recbole(path, columns, with_rating), 2
    elif kind == "movielens" and not path.name.lower().endswith(".csv"):
        table, first_line = _read_movielens(path, delimiter, columns, with_rating), 1
    else:
        sep = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
        names = _column_names(path, sep, pacsv.ReadOptions())
        roles = _resolve(names, columns, path, with_rating)
        table, first_line = _roles(_read_csv(path, sep, include=list(roles.values())), roles), 2
    # Arrow's allocator keeps the parser's scratch memory; hand it back before the heavy work.
    pa.default_memory_pool().release_unused()
    interactions = Interactions(table, path, first_line)
    check_interactions(interactions)
    return interactions


def _roles(table: pa.Table, roles: dict[str, str]) -> pa.Table:
    """The table with its columns renamed to user, item, time, rating."""
    return pa.table({role: table.column(name) for role, name in roles.items()})


# -- format readers ----------------------------------------------------------------------------
def _read_csv(
    path: Path,
    delimiter: str,
    read_options: pacsv.ReadOptions | None = None,
    types: dict | None = None,
    include: list[str] | None = None,
) -> pa.Table:
    """pyarrow CSV with error messages that name the file, the line and the column."""
    read_options = read_options or pacsv.ReadOptions()
    # Streaming in large blocks peaks at a fraction of `read_csv`'s memory and is faster.
    read_options.block_size = _BLOCK_SIZE
    types = dict(types or {})
    parse = pacsv.ParseOptions(delimiter=delimiter)
    for _attempt in range(8):  # each retry fixes one column's type
        try:
            convert = pacsv.ConvertOptions(column_types=types, null_values=[""], include_columns=include)
            reader = pacsv.open_csv(path, read_options=read_options, parse_options=parse, convert_options=convert)
            return pa.Table.from_batches(list(reader), schema=reader.schema)
        except pa.ArrowInvalid as error:
            message = str(error)
            if "Empty CSV file" in message:
                raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
            match = _CONVERSION.search(message)
            if not match:
                raise DataFormatError(f"{path}: {message}") from None
            # A column whose first rows looked numeric holds text further down: read it as
            # text; the checks then accept it as string ids or report it as non-numeric.
            names = _column_names(path, delimiter, read_options)  # the index counts file columns
            types[names[int(match.group(1))]] = pa.string()
    raise DataFormatError(f"{path}: could not settle the column types")


def _column_names(path: Path, delimiter: str, read_options: pacsv.ReadOptions) -> list[str]:
    if read_options.column_names:
        return list(read_options.column_names)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except pa.ArrowInvalid as error:
        if "Empty CSV file" in str(error):
            raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
        raise DataFormatError(f"{path}: {error}") from None
    return list(reader.schema.names)


def _read_parquet(path: Path, columns: ColumnMap, with_rating: bool) -> pa.Table:
    try:
        names = pq.read_schema(path).names
        roles = _resolve(names, columns, path, with_rating)
        return _roles(pq.read_table(path, columns=list(roles.values())), roles)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from None


def _read_recbole(path: Path, columns: ColumnMap, with_rating: bool) -> pa.Table:
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
    roles = _resolve(names, columns, path, with_rating)
    options = pacsv.ReadOptions(skip_rows=1, column_names=names)
    return _roles(_read_csv(path, "\t", options, types, include=list(roles.values())), roles)


def _read_movielens(path: Path, delimiter: str | None, columns: ColumnMap, with_rating: bool) -> pa.Table:
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
        table = _read_csv(path, ":", pacsv.ReadOptions(column_names=raw), include=list(file_roles.values()))
        return _roles(table, file_roles)
    table = _read_csv(path, delimiter or "\t", pacsv.ReadOptions(column_names=names), include=list(roles.values()))
    return _roles(table, roles)


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


def check_interactions(data: Interactions) -> None:
    """Checks (and normalises the types of) the columns in place; raises DataFormatError."""
    table = data.table
    if table.num_rows == 0:
        raise DataFormatError(f"{data.path}: no interaction rows (only a header?)")
    for role in table.column_names:
        column = table.column(role)
        if column.null_count:
            row = _first(pc.is_null(column))
            raise DataFormatError(f"{data.path}: {data.where(row)}: the {role} column is empty; every row needs a {role}")
    table = table.set_column(0, "user", _ids(table.column("user"), "user", data))
    table = table.set_column(1, "item", _ids(table.column("item"), "item", data))
    for role in ("time", "rating"):
        if role in table.column_names:
            index = table.column_names.index(role)
            table = table.set_column(index, role, _numbers(table.column(role), role, data))
    if "time" in table.column_names:
        time = table.column("time")
        bad = pc.less(time, 0)
        if pa.types.is_floating(time.type):
            bad = pc.or_(bad, pc.invert(pc.is_finite(time)))
        if pc.any(bad).as_py():
            row = _first(bad)
            raise DataFormatError(
                f"{data.path}: {data.where(row)}: timestamp {time[row].as_py()!r} is not a finite number >= 0"
            )
    data.table = table


def _ids(column: pa.ChunkedArray, role: str, data: Interactions) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _ids(column.cast(kind.value_type), role, data)
    if pa.types.is_integer(kind):
        return column.cast(pa.int64()) if kind != pa.int64() else column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    if pa.types.is_floating(kind):
        whole = pc.equal(pc.floor(column), column)
        if not pc.all(whole).as_py():
            row = _first(pc.invert(whole))
            raise DataFormatError(f"{data.path}: {data.where(row)}: {role} id {column[row].as_py()!r} is not a whole number or a string")
        return column.cast(pa.int64())
    raise DataFormatError(f"{data.path}: the {role} column has type {kind}; expected integer or string ids")


def _numbers(column: pa.ChunkedArray, role: str, data: Interactions) -> pa.ChunkedArray:
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
            raise DataFormatError(f"{data.path}: {data.where(row)}: {role} {column[row].as_py()!r} is not a number")
        return column.cast(pa.float64())
    raise DataFormatError(f"{data.path}: the {role} column has type {kind}; expected numbers")


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
