"""From an interaction file (or arrays) to a `Dataset`: read, filter by rating, hand the columns
to Rust (remap ids, sort, drop duplicates, k-core, split), and cache the result.

Policies (each logged when it applies):
- exact duplicate rows (same user, item and time) are dropped (`drop_duplicates=False` keeps
  them); repeated (user, item) pairs at different times are kept as repeat consumption;
- without a time column, file order is time order; ties in time keep file order; fractional
  timestamps are floored to whole units;
- users shorter than three interactions cannot get both split targets under leave-one-out: with
  two interactions the second is the test target (no validation target), with one the user only
  trains. Use `min_seq_len=3` to drop such users instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from .. import _loader
from .blocks import id_chunks, number_chunks
from .dataset import CACHE_FILE, SPLITS, Dataset, split_meta, dataset_from_sequences, load_dataset
from .errors import CacheError, DataFormatError
from .ids import check_id_type
from .readers import (BlockError, ColumnMap, Location, check_encoding, feed_table, parse_delimiter, read_into,
                      uncompressed_name)
from .source import source_record

log = logging.getLogger("seqrec_fast.data")


@dataclass(frozen=True)
class PrepareOptions:
    """How to read, filter and split. `id_type`: "auto" (integers where a text column holds only
    canonical integers, else strings), "string" or "int"; `encoding`: the text files' encoding;
    `k_core`: users and items keep at least k interactions (iterated to a fixpoint, together
    with `min_seq_len` for users); `min_rating`: keep rows with rating >= it. Invalid values
    raise DataFormatError naming the option, before any file is read."""

    columns: ColumnMap = field(default_factory=ColumnMap)
    delimiter: str | None = None
    id_type: str = "auto"
    encoding: str = "utf-8"
    min_rating: float | None = None
    k_core: int = 0
    min_seq_len: int = 1
    drop_duplicates: bool = True
    split: str = "leave_one_out"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        parse_delimiter(self.delimiter)
        check_id_type(self.id_type)
        check_encoding(self.encoding)
        for key, least in (("k_core", 0), ("min_seq_len", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise _option_error(key, f"an integer >= {least}", value)
        if self.min_rating is not None and not _finite(self.min_rating):
            raise _option_error("min_rating", "a finite number", self.min_rating)
        if self.split not in SPLITS:
            raise _option_error("split", f"one of {', '.join(SPLITS)}", self.split)
        if self.split == "temporal":
            valid, test = self.valid_fraction, self.test_fraction
            if not (_finite(valid) and _finite(test) and valid >= 0 and test > 0 and valid + test < 1):
                raise DataFormatError(
                    f"prepare options valid_fraction (--valid-fraction) and test_fraction (--test-fraction): expected "
                    f"0 <= valid_fraction, 0 < test_fraction and a sum below 1, got {valid!r} and {test!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _option_error(key: str, expected: str, value: Any) -> DataFormatError:
    return DataFormatError(f"prepare option {key} (--{key.replace('_', '-')}): expected {expected}, got {value!r}")


class _BuilderSink:
    """Feeds checked blocks to the Rust builder (after the rating threshold), so each block can be
    freed as soon as Rust has its compact copy."""

    def __init__(self, options: PrepareOptions, origin: str):
        self.options, self.origin = options, origin
        self.progress = tqdm(unit="rows", unit_scale=True, desc=f"reading {origin}", disable=None, leave=False)
        self.reset()

    def reset(self) -> None:
        self.builder = _loader.InteractionBuilder()
        self.rows_read = 0
        self.progress.reset()

    def add(self, table: pa.Table, first_row: int) -> None:
        self.rows_read += table.num_rows
        kept = None
        if self.options.min_rating is not None:
            kept = pc.greater_equal(table.column("rating"), self.options.min_rating)
            table = table.filter(kept)
        rows_before = self.builder.rows
        try:
            self.builder.add(
                id_chunks(table.column("user")),
                id_chunks(table.column("item")),
                number_chunks(table.column("time")) if "time" in table.column_names else None,
                table.num_rows,
            )
        except _loader.RowError as error:
            message, column, row = error.args
            if row is not None:
                # Rust counts the rows of all blocks after the rating filter; the reader names a
                # row of this block before it.
                row -= rows_before
                if kept is not None:
                    row = int(pc.indices_nonzero(kept)[row].as_py())
            raise BlockError(row, f"{column} column: {message}") from None
        self.progress.update(table.num_rows)

    def finish(self) -> tuple[_loader.Sequences, dict]:
        self.progress.close()
        options = self.options
        if options.min_rating is not None:
            log.info("%s: rating >= %s keeps %d of %d rows", self.origin, options.min_rating, self.builder.rows, self.rows_read)
            if self.builder.rows == 0:
                raise DataFormatError(f"{self.origin}: no rows have rating >= {options.min_rating}")
        try:
            return self.builder.finish(
                min_user=max(options.k_core, options.min_seq_len),
                min_item=max(options.k_core, 1),
                drop_duplicates=options.drop_duplicates,
                split=options.split,
                valid_fraction=options.valid_fraction,
                test_fraction=options.test_fraction,
            )
        except _loader.RowError as error:
            message, column, _row = error.args  # filters and splits fail on whole columns only
            raise DataFormatError(f"{self.origin}: {column} column: {message}") from None


def _to_dataset(sequences: _loader.Sequences, report: dict, meta: dict[str, Any], origin: str) -> Dataset:
    """Attaches the metadata and logs what the policies did."""
    if sequences.n_users == 0:
        raise DataFormatError(f"{origin}: no interactions are left after filtering")
    dataset = dataset_from_sequences(sequences, dict(meta, report=report))
    if report["duplicates_dropped"]:
        log.info("%s: dropped %d exact duplicate rows (same user, item and time)", origin, report["duplicates_dropped"])
    if report["filtered_rows"]:
        log.info(
            "%s: filters removed %d rows, %d users and %d items in %d rounds",
            origin, report["filtered_rows"], report["users_dropped"], report["items_dropped"], report["filter_rounds"],
        )
    stats = dataset.stats()
    no_valid, no_test = dataset.n_users - stats["valid_targets"], dataset.n_users - stats["test_targets"]
    if no_valid or no_test:
        log.info(
            "%s: %d users have no validation target and %d no test target (too few interactions for the %s split); "
            "they only train", origin, no_valid, no_test, dataset.split,
        )
    return dataset


def _options_meta(options: PrepareOptions) -> dict[str, Any]:
    return {"options": options.to_dict(), "split": split_meta(options.split, options.valid_fraction, options.test_fraction)}


def _fingerprint(source: dict[str, Any], options: PrepareOptions) -> str:
    """Names what a cache was built from: the source's path, format and content, the options."""
    key = json.dumps(
        {"source": source, "options": options.to_dict(), "cache_format": _loader.CACHE_FORMAT_VERSION},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _reusable_cache(out_dir: Path, fingerprint: str) -> Dataset | None:
    if not (out_dir / CACHE_FILE).is_file():
        return None
    try:
        cached = load_dataset(out_dir, check_source=False)
    except CacheError as error:
        log.warning("%s; rebuilding it", error)
        return None
    if cached.meta.get("fingerprint") != fingerprint:
        log.info("%s: cache is stale (the source file or the options changed); rebuilding it", out_dir / CACHE_FILE)
        return None
    return cached


def prepare_dataset(
    path: str | Path,
    format: str = "auto",
    out_dir: str | Path | None = None,
    *,
    force: bool = False,
    **options: Any,
) -> Dataset:
    """Reads an interaction file into a `Dataset`; options are the fields of `PrepareOptions`.
    With `out_dir`, the result is cached there (`dataset.bin`) and an up-to-date cache for the
    same file and options is memory-mapped instead of rebuilt (unless `force`)."""
    path = Path(path)
    if isinstance(options.get("columns"), dict):
        options["columns"] = ColumnMap(**options["columns"])
    prepare = PrepareOptions(**options)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    source = source_record(path, format)
    fingerprint = _fingerprint(source, prepare)
    if out_dir is not None and not force:
        cached = _reusable_cache(Path(out_dir), fingerprint)
        if cached is not None:
            log.info("%s: up to date, memory-mapped", Path(out_dir) / CACHE_FILE)
            return cached
    sink = _BuilderSink(prepare, str(path))
    read_into(sink, path, format, prepare.columns, prepare.delimiter, with_rating=prepare.min_rating is not None,
              id_type=prepare.id_type, encoding=prepare.encoding)
    sequences, report = sink.finish()
    name = uncompressed_name(path)
    meta = {
        "name": name.rpartition(".")[0] or name,
        "source": source,
        "fingerprint": fingerprint,
        **_options_meta(prepare),
    }
    dataset = _to_dataset(sequences, report, meta, str(path))
    if out_dir is not None:
        saved = dataset.save(out_dir)
        log.info("%s: written", saved)
    return dataset


def from_interactions(
    users: Any,
    items: Any,
    times: Any = None,
    *,
    name: str = "interactions",
    **options: Any,
) -> Dataset:
    """A `Dataset` from in-memory columns (numpy arrays, lists or Arrow arrays of int or string
    ids; times numeric or None for given order); options as for `prepare_dataset`."""
    prepare = PrepareOptions(**options)
    columns = {"user": pa.chunked_array([pa.array(users)]), "item": pa.chunked_array([pa.array(items)])}
    if times is not None:
        columns["time"] = pa.chunked_array([pa.array(np.asarray(times))])
    origin = f"<{name}>"
    sink = _BuilderSink(prepare, origin)
    feed_table(sink, pa.table(columns), Location(Path(origin), None))  # the same checks as for files
    sequences, report = sink.finish()
    meta = {"name": name, "source": {"arrays": True}, **_options_meta(prepare)}
    return _to_dataset(sequences, report, meta, f"<{name}>")
