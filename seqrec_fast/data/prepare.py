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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from .. import _loader
from .dataset import CACHE_FILE, Dataset, split_meta, dataset_from_sequences, load_dataset
from .errors import CacheError, DataFormatError
from .readers import ColumnMap, Location, check_block, id_chunks, number_chunks, read_into

log = logging.getLogger("seqrec_fast.data")


@dataclass(frozen=True)
class PrepareOptions:
    """Filters and split. `k_core`: users and items keep at least k interactions (iterated to a
    fixpoint, together with `min_seq_len` for users); `min_rating`: keep rows with rating >= it."""

    columns: ColumnMap = field(default_factory=ColumnMap)
    delimiter: str | None = None
    min_rating: float | None = None
    k_core: int = 0
    min_seq_len: int = 1
    drop_duplicates: bool = True
    split: str = "leave_one_out"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.k_core < 0 or self.min_seq_len < 1:
            raise ValueError(f"k_core must be >= 0 and min_seq_len >= 1, got {self.k_core} and {self.min_seq_len}")
        split_meta(self.split, self.valid_fraction, self.test_fraction)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
        if self.options.min_rating is not None:
            table = table.filter(pc.greater_equal(table.column("rating"), self.options.min_rating))
        try:
            self.builder.add(
                id_chunks(table.column("user")),
                id_chunks(table.column("item")),
                number_chunks(table.column("time")) if "time" in table.column_names else None,
                table.num_rows,
            )
        except _loader.RowError as error:
            raise self._data_error(error) from None
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
            raise self._data_error(error) from None

    def _data_error(self, error: _loader.RowError) -> DataFormatError:
        # The readers' checks come first, so Rust only reports whole-column problems in practice.
        message, column, row = error.args
        place = f", kept row {row}" if row is not None else ""
        return DataFormatError(f"{self.origin}{place}: {column} column: {message}")


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


def _fingerprint(path: Path, format: str, options: PrepareOptions) -> str:
    stat = path.stat()
    key = json.dumps(
        {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": format,
         "options": options.to_dict(), "cache_format": _loader.CACHE_FORMAT_VERSION},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _reusable_cache(out_dir: Path, fingerprint: str) -> Dataset | None:
    if not (out_dir / CACHE_FILE).is_file():
        return None
    try:
        cached = load_dataset(out_dir)
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
    fingerprint = _fingerprint(path, format, prepare)
    if out_dir is not None and not force:
        cached = _reusable_cache(Path(out_dir), fingerprint)
        if cached is not None:
            log.info("%s: up to date, memory-mapped", Path(out_dir) / CACHE_FILE)
            return cached
    sink = _BuilderSink(prepare, str(path))
    read_into(sink, path, format, prepare.columns, prepare.delimiter, with_rating=prepare.min_rating is not None)
    sequences, report = sink.finish()
    meta = {
        "name": path.stem if path.suffix else path.name,
        "source": {"path": str(path.resolve()), "format": format},
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
    table = check_block(pa.table(columns), Location(Path(origin), None))  # the same checks as for files
    sink = _BuilderSink(prepare, origin)
    sink.add(table, 0)
    sequences, report = sink.finish()
    meta = {"name": name, "source": {"arrays": True}, **_options_meta(prepare)}
    return _to_dataset(sequences, report, meta, f"<{name}>")
