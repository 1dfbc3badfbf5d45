"""``seqrec-fast recommend``: the top k items of every user of a run's dataset (or of a users
file, or of new sequences) into a CSV, Parquet or JSON-lines file, a batch at a time, so that
no more than one batch's scores are ever held."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ..data.errors import DataFormatError
from .inputs import read_sequences, read_user_ids
from .output import check_output_path, long_table, write_recommendations
from .recommender import DEFAULT_BATCH_SIZE, Recommender, TopK

REPORTED_LINES = 20  # skipped-id reports printed one by one; the rest are counted


@dataclass
class RecommendSummary:
    out: str
    k: int
    filter_history: bool
    rows: int = 0  # users or sequences given recommendations
    recommendations: int = 0
    skipped_sequences: int = 0  # sequences without a known item
    sequences_with_unknown_items: int = 0
    unknown_items: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    reported: int = 0  # lines about skipped ids or sequences (the first REPORTED_LINES printed)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _table(recommender: Recommender, key_name: str, keys: pa.Array, top: TopK) -> pa.Table:
    kept = top.items > 0
    return long_table(key_name, keys, recommender.items.originals_of(top.items[kept]), top.scores[kept],
                      kept.sum(axis=1))


def _unknown_users(path: Path, numbers: list[int], ids: list[str], found: np.ndarray, data: str) -> DataFormatError:
    missing = np.flatnonzero(found < 0)
    first = missing[0]
    more = f" ({len(missing)} unknown ids in all, on lines {', '.join(str(numbers[i]) for i in missing[:5])}" \
           f"{', ...' if len(missing) > 5 else ''})" if len(missing) > 1 else ""
    return DataFormatError(f"{path} line {numbers[first]}: unknown user id {ids[first]!r}: not a user of the run's "
                           f"dataset {data}{more}")


def recommend_to_file(recommender: Recommender, out: str | Path, *, k: int = 10, filter_history: bool = True,
                      users_file: str | Path | None = None, sequences_file: str | Path | None = None,
                      batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                      report: Callable[[str], None] | None = None) -> RecommendSummary:
    """Writes the top ``k`` of every dataset user (or of ``users_file``'s users, or of
    ``sequences_file``'s sequences) to ``out``; ``report`` gets one line per skipped id or
    sequence (the first REPORTED_LINES of them)."""
    if users_file is not None and sequences_file is not None:
        raise ValueError("--users and --sequences exclude each other: recommend for dataset users or for new sequences")
    if k < 1:
        raise ValueError(f"--k must be at least 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    out = check_output_path(out)
    report = report or (lambda line: print(line, file=sys.stderr))
    summary = RecommendSummary(str(out), k, filter_history)
    started = time.perf_counter()
    if sequences_file is not None:
        tables = _sequence_tables(recommender, Path(sequences_file), k, filter_history, batch_size, progress,
                                  summary, report)
    else:
        tables = _user_tables(recommender, users_file, k, filter_history, batch_size, progress, summary)
    write_recommendations(out, "sequence" if sequences_file is not None else "user", tables)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.rows_per_s = round(summary.rows / summary.seconds, 1) if summary.seconds else 0.0
    return summary


def _user_tables(recommender: Recommender, users_file, k: int, filter_history: bool, batch_size: int,
                 progress: bool, summary: RecommendSummary) -> Iterator[pa.Table]:
    users = None
    if users_file is not None:
        numbers, ids = read_user_ids(users_file)
        users = recommender.user_indices(ids)
        if (users < 0).any():
            raise _unknown_users(Path(users_file), numbers, ids, users, recommender.dataset.name)
    total = recommender.dataset.n_users if users is None else len(users)
    bar = tqdm(total=total, unit="users", desc="recommend", disable=not progress, file=sys.stderr, leave=False)
    with bar:
        for batch, top in recommender.recommend_users(users, k, filter_history=filter_history, batch_size=batch_size):
            table = _table(recommender, "user", recommender.users.originals_of(batch), top)
            summary.rows += len(batch)
            summary.recommendations += len(table)
            bar.update(len(batch))
            yield table


def _sequence_tables(recommender: Recommender, path: Path, k: int, filter_history: bool, batch_size: int,
                     progress: bool, summary: RecommendSummary, report: Callable[[str], None]) -> Iterator[pa.Table]:
    where = "row" if path.suffix.lower() == ".parquet" else "line"

    def say(line: str) -> None:
        if summary.reported < REPORTED_LINES:
            report(line)
        summary.reported += 1

    bar = tqdm(unit="sequences", desc="recommend", disable=not progress, file=sys.stderr, leave=False)
    with bar:
        for numbers, sequences in read_sequences(path, batch_size):
            encoded = recommender.encode(sequences)
            empty = encoded.lengths == 0
            for row in sorted(set(encoded.unknown) | set(np.flatnonzero(empty).tolist())):
                values = encoded.unknown.get(row, [])
                summary.unknown_items += len(values)
                summary.sequences_with_unknown_items += bool(values)
                shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
                unknown = f"{len(values)} unknown item id(s) skipped ({shown})" if values else ""
                skipped = ("no known item left: sequence skipped" if values else "empty sequence skipped") if empty[row] else ""
                say(f"{path} {where} {numbers[row]}: " + "; ".join(part for part in (unknown, skipped) if part))
            summary.skipped_sequences += int(empty.sum())
            top = recommender.top_k(encoded.offsets, encoded.items, k, filter_history)
            top = TopK(np.where(empty[:, None], 0, top.items), top.scores)
            table = _table(recommender, "sequence", pa.array(numbers, type=pa.int64()), top)
            summary.rows += int((~empty).sum())
            summary.recommendations += len(table)
            bar.update(len(numbers))
            yield table
    if summary.reported > REPORTED_LINES:
        report(f"{path}: {summary.reported - REPORTED_LINES} more {where}s with skipped ids or sequences "
               "not shown")
