"""Readers for interaction logs (pyarrow): CSV/TSV, Parquet, RecBole atomic `.inter` files and
the MovieLens formats (ml-100k `u.data`, ml-1m/10m `ratings.dat`, ml-20m/25m `ratings.csv`).

Files are streamed in blocks: every block is checked (so the Rust core only sees valid values)
and handed to a sink as a table with columns user, item and optionally time and rating, so a
20M-row file never has to sit in memory whole next to what is built from it.

Ids are typed by `ids.IdKinds` (`007` and `7` stay two ids). Compressed files (.gz, .bz2, .zst,
.lz4) are read by the name under the suffix."""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .blocks import check_block
from .errors import DataFormatError
from .ids import IdKinds, IdsAreText, check_id_type

FORMATS = ("auto", "csv", "parquet", "recbole", "movielens")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")

# Column names recognised when no mapping is given (compared case-insensitively).
_CANDIDATES = {
    "user": ("user_id", "userid", "user", "uid", "visitorid", "customer_id"),
    "item": ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id"),
    "time": ("timestamp", "time", "ts", "datetime", "date"),
    "rating": ("rating", "score", "stars"),
}
_BLOCK_SIZE = 1 << 20  # small blocks: pyarrow reads ahead, and the read-ahead is counted in blocks
_PARQUET_BATCH_ROWS = 1 << 20
_PARSE_ERROR = re.compile(r"CSV parse error: (?:Row #(\d+): )?(.*)", re.S)
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


class BlockError(Exception):
    """A sink's complaint about a row of the block it was given (`row` counts within that
    block, None for the block as a whole); `read_into` names the file's line."""

    def __init__(self, row: int | None, message: str):
        super().__init__(row, message)
        self.row, self.message = row, message


def uncompressed_name(path: Path) -> str:
    """The file's name without a compression suffix: `ratings.dat.gz` -> `ratings.dat`."""
    for suffix in COMPRESSION_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def detect_format(path: Path) -> str:
    name = uncompressed_name(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".inter"):
        return "recbole"
    if name == "u.data" or name.endswith((".dat", ".data")):
        return "movielens"
    return "csv"


def parse_delimiter(delimiter: str | None) -> str | None:
    """One field separator character; `\\t` as typed on a command line (and "tab") mean a tab."""
    if delimiter is None:
        return None
    if delimiter in ("\\t", "tab"):
        return "\t"
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise DataFormatError(f"delimiter (--delimiter): expected one character other than a quote or line break "
                              f"(\\t for tab), got {delimiter!r}")
    return delimiter


def check_encoding(encoding: str) -> str:
    """The codec's canonical name (utf-8, iso8859-1, ...), or a DataFormatError naming the option."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataFormatError(f"encoding (--encoding): unknown text encoding {encoding!r}; expected a Python codec "
                              f"name such as utf-8 or latin-1") from None




def read_into(
    sink: InteractionSink,
    path: str | Path,
    format: str = "auto",
    columns: ColumnMap = ColumnMap(),
    delimiter: str | None = None,
    with_rating: bool = False,
    id_type: str = "auto",
    encoding: str = "utf-8",
) -> Location:
    """Streams the checked blocks of an interaction file into `sink`; returns how rows are named.
    Only the needed columns are parsed; `with_rating` also reads the rating column."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    check_id_type(id_type)
    encoding = check_encoding(encoding)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: the file is empty; expected interaction rows")
    kind = detect_format(path) if format == "auto" else format
    plan = _plan(path, kind, columns, parse_delimiter(delimiter), with_rating, encoding)
    text_columns: dict[str, pa.DataType] = {}
    text_ids: set[str] = set()
    for _attempt in range(8):  # each retry reads one more column as text
        ids = IdKinds(id_type, plan.untyped_ids, text_ids)
        try:
            rows = 0
            for table in plan.blocks(text_columns):
                table = check_block(table, plan.location, rows, ids)
                _add(sink, table, rows, plan.location)
                rows += table.num_rows
                # Arrow's allocator keeps freed blocks; give them back as the sink's memory grows.
                pa.default_memory_pool().release_unused()
        except _TypeChanged as change:
            text_columns[change.column] = pa.string()
            sink.reset()
            continue
        except IdsAreText as change:
            text_ids.add(change.role)
            sink.reset()
            continue
        if rows == 0:
            raise DataFormatError(f"{path}: no interaction rows (only a header?)")
        return plan.location
    raise DataFormatError(f"{path}: could not settle the column types")


def _add(sink: InteractionSink, table: pa.Table, first_row: int, location: Location) -> None:
    try:
        sink.add(table, first_row)
    except BlockError as error:
        place = location(first_row + error.row) if error.row is not None else str(location.path)
        raise DataFormatError(f"{place}: {error.message}") from None


def feed_table(sink: InteractionSink, table: pa.Table, location: Location) -> None:
    """Checks an in-memory table and hands it to `sink` as one block."""
    _add(sink, check_block(table, location), 0, location)


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
    id_type: str = "auto",
    encoding: str = "utf-8",
) -> Interactions:
    """Reads and checks a whole interaction file into one table."""
    collect = _Collect()
    location = read_into(collect, path, format, columns, delimiter, with_rating, id_type, encoding)
    return Interactions(pa.concat_tables(collect.tables), location)


Blocks = Callable[[dict], Iterator[pa.Table]]


@dataclass(frozen=True)
class _Plan:
    """How to read a file: its row naming, a function of the columns to force to text that
    yields blocks with role-named columns, and the id roles whose type the file does not state."""

    location: Location
    blocks: Blocks
    untyped_ids: frozenset[str] = frozenset()


_TEXT_IDS = frozenset({"user", "item"})


def _plan(path: Path, kind: str, columns: ColumnMap, delimiter: str | None, with_rating: bool, encoding: str) -> _Plan:
    if kind == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from None
        roles = _resolve(parquet.schema_arrow.names, columns, path, with_rating)

        def parquet_blocks(_text: dict) -> Iterator[pa.Table]:
            try:
                for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=list(roles.values())):
                    yield _roles(pa.Table.from_batches([batch]), roles)
            except (pa.ArrowException, OSError) as error:
                raise DataFormatError(f"{path}: not a readable Parquet file ({error})") from None

        return _Plan(Location(path, None), parquet_blocks)
    if kind == "recbole":
        names, types = _recbole_header(path, encoding)
        roles = _resolve(names, columns, path, with_rating)
        options = dict(skip_rows=1, column_names=names)
        return _Plan(Location(path, 2), lambda text: _csv_blocks(path, "\t", options, {**types, **text}, roles, encoding))
    if kind == "movielens" and not uncompressed_name(path).lower().endswith(".csv"):
        return _movielens_plan(path, delimiter, columns, with_rating, encoding)
    sep = delimiter or ("\t" if uncompressed_name(path).lower().endswith((".tsv", ".tab")) else ",")
    roles = _resolve(_column_names(path, sep, {}, encoding), columns, path, with_rating)
    id_columns = {roles[role]: pa.string() for role in _TEXT_IDS}
    return _Plan(Location(path, 2), lambda text: _csv_blocks(path, sep, {}, {**text, **id_columns}, roles, encoding),
                 _TEXT_IDS)


def _roles(table: pa.Table, roles: dict[str, str]) -> pa.Table:
    """The table with its columns renamed to user, item, time, rating."""
    return pa.table({role: table.column(name) for role, name in roles.items()})


# -- format readers ----------------------------------------------------------------------------
def _read_options(encoding: str, **options) -> pacsv.ReadOptions:
    # pyarrow transcodes other encodings to UTF-8 through Python's codecs; UTF-8 it reads natively.
    if encoding != "utf-8":
        options["encoding"] = encoding
    return pacsv.ReadOptions(**options)


def _csv_blocks(path: Path, delimiter: str, read_options: dict, types: dict, roles: dict[str, str],
                encoding: str) -> Iterator[pa.Table]:
    """Streams a CSV-like file in large blocks (a fraction of `read_csv`'s peak memory)."""
    convert = pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                   include_columns=list(roles.values()))
    # No read-ahead thread: blocks are parsed as they are consumed, so they cannot pile up.
    options = _read_options(encoding, block_size=_BLOCK_SIZE, use_threads=False, **read_options)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        reader = pacsv.open_csv(path, read_options=options, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield _roles(pa.Table.from_batches([batch]), roles)
    except pa.ArrowInvalid as error:
        message = str(error)
        if "Empty CSV file" in message:
            raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
        if "invalid UTF8" in message:
            raise _not_utf8(path, encoding) from None
        match = _CONVERSION.search(message)
        if not match:
            raise _parse_error(path, message) from None
        # The index counts the file's columns.
        raise _TypeChanged(_column_names(path, delimiter, read_options, encoding)[int(match.group(1))]) from None
    except (OSError, UnicodeDecodeError, pa.ArrowNotImplementedError) as error:
        raise _unreadable(path, error) from None


def _parse_error(path: Path, message: str) -> DataFormatError:
    """pyarrow's parse error with its "Row #N" (the file's line, the header counted) as a line."""
    match = _PARSE_ERROR.match(message)
    if not match:
        return DataFormatError(f"{path}: {message}")
    row, detail = match.groups()
    place = f"{path}: line {row}" if row else str(path)
    return DataFormatError(f"{place}: {detail} (every line needs the header's number of fields; quote a field "
                           f"that holds the delimiter)")


def _unreadable(path: Path, error: Exception) -> DataFormatError:
    if isinstance(error, UnicodeDecodeError):
        return DataFormatError(f"{path}: not valid {error.encoding} text ({error.reason}); pass the file's "
                               f"encoding (--encoding, e.g. latin-1)")
    hint = " (a truncated or corrupt compressed file?)" if path.name.lower().endswith(COMPRESSION_SUFFIXES) else ""
    return DataFormatError(f"{path}: cannot read: {error}{hint}")


def _not_utf8(path: Path, encoding: str) -> DataFormatError:
    """Names the first line that does not decode, found by scanning the file (an error path)."""
    line = _first_undecodable_line(path, encoding)
    place = f"{path}: line {line}" if line is not None else str(path)
    return DataFormatError(f"{place}: not valid {encoding} text; pass the file's encoding (--encoding, e.g. latin-1)")


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            for number, line in enumerate(io.BufferedReader(stream), start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def _first_line(path: Path, encoding: str) -> str:
    """The file's first line, decompressed."""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            raw = io.BufferedReader(stream).readline()
    except OSError as error:
        raise _unreadable(path, error) from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: line 1: not valid {encoding} text; pass the file's encoding "
                              f"(--encoding, e.g. latin-1)") from None


def _column_names(path: Path, delimiter: str, read_options: dict, encoding: str) -> list[str]:
    if read_options.get("column_names"):
        return list(read_options["column_names"])
    try:
        # One thread: pyarrow then names the row of a parse error.
        reader = pacsv.open_csv(path, read_options=_read_options(encoding, block_size=1 << 16, use_threads=False),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter))
        return list(reader.schema.names)
    except pa.ArrowInvalid as error:
        if "Empty CSV file" in str(error):
            raise DataFormatError(f"{path}: the file is empty; expected interaction rows") from None
        raise _parse_error(path, str(error)) from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: line 1: the header is not valid {encoding} text; pass the file's encoding "
                              f"(--encoding, e.g. latin-1)") from None
    except (OSError, pa.ArrowNotImplementedError) as error:
        raise _unreadable(path, error) from None


_RECBOLE_TYPES = {"token": pa.string(), "token_seq": pa.string(), "float": pa.float64(), "float_seq": pa.string()}


def _recbole_header(path: Path, encoding: str) -> tuple[list[str], dict[str, pa.DataType]]:
    """RecBole atomic file: a tab-separated header of `name:type` fields (token, float, ...)."""
    header = _first_line(path, encoding).rstrip("\r\n").split("\t")
    names, types = [], {}
    for field in header:
        name, _, kind = field.partition(":")
        if not kind:
            raise DataFormatError(f"{path}: line 1: header field {field!r} lacks a type; expected name:type such as user_id:token")
        if kind not in _RECBOLE_TYPES:
            raise DataFormatError(f"{path}: line 1: header field {field!r} has type {kind!r}; expected one of "
                                  f"{', '.join(_RECBOLE_TYPES)}")
        names.append(name)
        types[name] = _RECBOLE_TYPES[kind]
    return names, types


def _movielens_plan(path: Path, delimiter: str | None, columns: ColumnMap, with_rating: bool, encoding: str) -> _Plan:
    """ml-100k u.data (tab separated) and ml-1m/ml-10m ratings.dat (`::` separated), no header:
    user, item, rating, timestamp."""
    first = _first_line(path, encoding)
    names = ["user_id", "item_id", "rating", "timestamp"]
    roles = _resolve(names, columns, path, with_rating)
    if "::" in first:
        # pyarrow splits on one character: "a::b" is a, (empty), b, so field i is column 2i.
        if first.count("::") != 3:
            raise DataFormatError(f"{path}: line 1: expected UserID::MovieID::Rating::Timestamp")
        raw = [f"f{i}" for i in range(7)]
        file_roles = {role: raw[2 * names.index(name)] for role, name in roles.items()}
        id_columns = {file_roles[role]: pa.string() for role in _TEXT_IDS}
        return _Plan(Location(path, 1), lambda text: _csv_blocks(path, ":", dict(column_names=raw), {**text, **id_columns},
                                                                 file_roles, encoding), _TEXT_IDS)
    options = dict(column_names=names)
    id_columns = {roles[role]: pa.string() for role in _TEXT_IDS}
    return _Plan(Location(path, 1), lambda text: _csv_blocks(path, delimiter or "\t", options, {**text, **id_columns},
                                                             roles, encoding), _TEXT_IDS)


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
