"""Malformed CSV/TSV/Parquet/RecBole files fed to `data prepare`, through the Python API and the
CLI: each either prepares or raises the project's data error (exit 2 from the CLI), never a
traceback, and a failure leaves nothing in the output directory (issue 16, must-show fuzz)."""

from __future__ import annotations

import datetime
import gzip
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, event, given, settings, strategies as st

from seqrec_fast.cli import main
from seqrec_fast.data import CacheError, DataFormatError, load_dataset, prepare_dataset
from seqrec_fast.data.dataset import CACHE_FILE

GOOD_CELLS = st.sampled_from(["1", "2", "3", "5", "7", "10", "42", "007", "01", "0", "12.5", "1700000000"])
BAD_CELLS = st.sampled_from([
    "", "-1", "1.5", "1e19", "-4", "nan", "inf", "abc", "x y", " 3", "+5", "9223372036854775807",
    "9223372036854775808", "18446744073709551616", "2020-01-05", "2020-13-45", "2020-01-05 10:00:00", '"', '"a,b"',
    "\u00e9", "\\t", "true", "1::2", "\x00",
])
CELLS = st.one_of(GOOD_CELLS, GOOD_CELLS, GOOD_CELLS, BAD_CELLS)
NAMES = st.sampled_from(["user", "item", "time", "rating", "user_id", "item_id", "timestamp", "x", "", "user"])
CANONICAL = st.permutations(["user", "item", "time", "rating"])
HEADER = st.one_of(CANONICAL, CANONICAL, st.lists(NAMES, min_size=1, max_size=5))
TEXT_KINDS = ("csv", "tsv", "inter", "csv.gz", "dat")


@st.composite
def text_file(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(TEXT_KINDS))
    header = list(draw(HEADER))
    n_columns = len(header)
    if kind == "inter":
        types = draw(st.one_of(st.lists(st.sampled_from(["token", "float"]), min_size=n_columns, max_size=n_columns),
                               st.lists(st.sampled_from(["token", "float", "token_seq", "", "int"]), min_size=n_columns,
                                        max_size=n_columns)))
        header = [f"{name}:{kind_}" if kind_ else name for name, kind_ in zip(header, types)]
    if draw(st.integers(0, 2)):  # a well-formed file, so that filters and splits run too
        rows = draw(st.lists(st.lists(GOOD_CELLS, min_size=n_columns, max_size=n_columns), min_size=2, max_size=16))
    else:
        rows = draw(st.lists(st.lists(CELLS, min_size=max(0, n_columns - 1), max_size=n_columns + 1), max_size=16))
    sep = {"csv": ",", "csv.gz": ",", "tsv": "\t", "inter": "\t", "dat": "::"}[kind]
    lines = ([] if kind == "dat" else [sep.join(header)]) + [sep.join(row) for row in rows]
    data = ("\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))).encode(draw(st.sampled_from(["utf-8", "latin-1"])), "replace")
    if draw(st.integers(0, 4)) == 0:  # damage a few bytes
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            if not data:
                break
            position = draw(st.integers(0, len(data) - 1))
            data[position] = draw(st.integers(0, 255))
        data = bytes(data)
    if kind == "csv.gz":
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    name = {"csv": "log.csv", "csv.gz": "log.csv.gz", "tsv": "log.tsv", "inter": "log.inter", "dat": "ratings.dat"}[kind]
    return name, data


ARROW_COLUMNS = {
    "int": st.lists(st.integers(-5, 2**63 - 1), min_size=0, max_size=8).map(lambda v: pa.array(v, pa.int64())),
    "small int": st.lists(st.integers(0, 6), min_size=1, max_size=12).map(lambda v: pa.array(v, pa.int64())),
    "uint": st.lists(st.integers(0, 2**64 - 1), max_size=8).map(lambda v: pa.array(v, pa.uint64())),
    "float": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8).map(lambda v: pa.array(v, pa.float64())),
    "string": st.lists(st.one_of(st.none(), CELLS), max_size=8).map(lambda v: pa.array(v, pa.string())),
    "date": st.lists(st.dates(min_value=datetime.date(1900, 1, 1)), max_size=8).map(lambda v: pa.array(v, pa.date32())),
    "timestamp": st.lists(st.datetimes(min_value=datetime.datetime(1900, 1, 1)), max_size=8).map(lambda v: pa.array(v, pa.timestamp("us"))),
    "bool": st.lists(st.booleans(), max_size=8).map(pa.array),
    "binary": st.lists(st.binary(max_size=4), max_size=8).map(lambda v: pa.array(v, pa.binary())),
    "dictionary": st.lists(CELLS, max_size=8).map(lambda v: pa.array(v, pa.string()).dictionary_encode()),
}


@st.composite
def parquet_file(draw) -> tuple[str, bytes]:
    names = list(draw(st.one_of(st.permutations(["user", "item", "time"]), st.lists(NAMES, min_size=1, max_size=4, unique=True))))
    columns = [draw(ARROW_COLUMNS[draw(st.sampled_from(sorted(ARROW_COLUMNS)))]) for _ in names]
    n_rows = min(len(c) for c in columns)
    table = pa.table({name: column.slice(0, n_rows) for name, column in zip(names, columns)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return "log.parquet", data


GOOD_OPTIONS = st.fixed_dictionaries({}, optional={
    "k_core": st.sampled_from([0, 2]),
    "min_seq_len": st.sampled_from([1, 2]),
    "min_rating": st.sampled_from([None, 2.0]),
    "split": st.sampled_from(["leave_one_out", "temporal"]),
    "id_type": st.sampled_from(["auto", "string", "int"]),
    "encoding": st.sampled_from(["utf-8", "latin-1"]),
})
ANY_OPTIONS = st.fixed_dictionaries({}, optional={
    "k_core": st.integers(-1, 3),
    "min_seq_len": st.integers(0, 3),
    "min_rating": st.sampled_from([None, 2.0, float("nan")]),
    "split": st.sampled_from(["leave_one_out", "temporal"]),
    "valid_fraction": st.sampled_from([0.0, 0.1, 0.5, 1.5]),
    "test_fraction": st.sampled_from([0.0, 0.1, 0.6]),
    "id_type": st.sampled_from(["auto", "string", "int"]),
    "delimiter": st.sampled_from([None, ",", "\\t", ";"]),
    "encoding": st.sampled_from(["utf-8", "latin-1"]),
})
OPTIONS = st.one_of(GOOD_OPTIONS, GOOD_OPTIONS, ANY_OPTIONS)


def cli_arguments(options: dict) -> list[str]:
    arguments = []
    for key, value in options.items():
        if value is not None:
            arguments += [f"--{key.replace('_', '-')}", str(value)]
    return arguments


def check_prepare(name: str, data: bytes, options: dict, through_cli: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="seqrec-fuzz-"))
    try:
        source, out = work / name, work / "out"
        source.write_bytes(data)
        if through_cli:
            code = main(["data", "prepare", str(source), "--out", str(out), "--json", *cli_arguments(options)])
            assert code in (0, 2)
            succeeded = code == 0
        else:
            try:
                prepare_dataset(source, out_dir=out, **options)
                succeeded = True
            except (DataFormatError, CacheError):
                succeeded = False
        event("prepared" if succeeded else "refused")
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        assert left == ([CACHE_FILE] if succeeded else []), left
        if succeeded:
            assert load_dataset(out).n_interactions > 0
    finally:
        shutil.rmtree(work)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(file=st.one_of(text_file(), parquet_file()), options=OPTIONS)
def test_prepare_api_raises_only_data_errors_and_leaves_nothing_on_failure(file, options):
    check_prepare(*file, options, through_cli=False)


@FUZZ
@given(file=st.one_of(text_file(), parquet_file()), options=OPTIONS)
def test_prepare_cli_exits_0_or_2_and_leaves_nothing_on_failure(file, options):
    check_prepare(*file, options, through_cli=True)
