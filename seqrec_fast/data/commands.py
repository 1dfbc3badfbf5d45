"""`seqrec-fast data prepare|synth|stats`. Imports of the heavy modules happen inside handlers
so that `seqrec-fast --help` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _report(stats: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    payload = dict(stats, **(extra or {}))
    if as_json:
        print(json.dumps(payload, default=str))
        return
    lengths = stats["sequence_length"]
    rows = [
        ("dataset", stats["name"]),
        ("users", f"{stats['users']:,}"),
        ("items", f"{stats['items']:,}"),
        ("interactions", f"{stats['interactions']:,}"),
        ("density", f"{stats['density']:.5f}"),
        ("sequence length", f"min {lengths['min']}, median {lengths['median']:g}, mean {lengths['mean']:.1f}, max {lengths['max']}"),
        ("split", stats["split"]),
        ("train interactions", f"{stats['train_interactions']:,}"),
        ("validation targets", f"{stats['valid_targets']:,}"),
        ("test targets", f"{stats['test_targets']:,}"),
    ]
    rows += [(key, str(value)) for key, value in (extra or {}).items()]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .errors import CacheError, DataFormatError
    from .prepare import prepare_dataset

    _setup_logging()
    columns = {role: getattr(args, f"{role}_col") for role in ("user", "item", "time", "rating")}
    started = time.perf_counter()
    try:
        dataset = prepare_dataset(
            args.input, args.format, args.out, force=args.force,
            columns={k: v for k, v in columns.items() if v is not None},
            delimiter=args.delimiter, id_type=args.id_type, encoding=args.encoding, min_rating=args.min_rating, k_core=args.k_core,
            min_seq_len=args.min_seq_len, drop_duplicates=not args.keep_duplicates,
            split=args.split, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
        )
    except (DataFormatError, CacheError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _report(dataset.stats(), args.json, {"out": str(args.out), "seconds": round(time.perf_counter() - started, 3)})
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import synthesize

    _setup_logging()
    started = time.perf_counter()
    dataset = synthesize(args.preset, args.seed)
    path = dataset.save(args.out)
    _report(dataset.stats(), args.json, {"out": str(path), "seconds": round(time.perf_counter() - started, 3)})
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from .dataset import load_dataset
    from .errors import CacheError

    _setup_logging()
    try:
        dataset = load_dataset(args.dir)
    except CacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _report(dataset.stats(), args.json)
    return 0


def register(commands: Any) -> None:
    data = commands.add_parser("data", help="prepare, synthesize and inspect datasets", description="prepare, synthesize and inspect datasets")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    prepare = sub.add_parser("prepare", help="read an interaction file into a cached dataset",
                             description="Read an interaction file (CSV/TSV, Parquet, RecBole .inter, MovieLens) into "
                                         "a memory-mappable dataset cache and print its statistics.")
    prepare.add_argument("input", help="interaction file")
    prepare.add_argument("--format", choices=("auto", "csv", "parquet", "recbole", "movielens"), default="auto")
    prepare.add_argument("--out", required=True, help="output directory (dataset.bin is written there)")
    for role in ("user", "item", "time", "rating"):
        prepare.add_argument(f"--{role}-col", help=f"name of the {role} column (default: recognise a usual name)")
    prepare.add_argument("--delimiter", help="CSV field separator, one character; \\t (or tab) for a tab "
                                             "(default: ',' or tab for .tsv)")
    prepare.add_argument("--id-type", choices=("auto", "string", "int"), default="auto",
                         help="read user and item ids as strings or integers; auto: integers where a text column holds "
                              "only canonical integers (so 007 and 7 stay two ids), else strings")
    prepare.add_argument("--encoding", default="utf-8", help="text encoding of the file (e.g. latin-1)")
    prepare.add_argument("--min-rating", type=float, help="keep only rows with rating >= this")
    prepare.add_argument("--k-core", type=int, default=0, help="users and items keep at least k interactions")
    prepare.add_argument("--min-seq-len", type=int, default=1, help="users need at least this many interactions")
    prepare.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicate rows")
    prepare.add_argument("--split", choices=("leave_one_out", "temporal"), default="leave_one_out")
    prepare.add_argument("--valid-fraction", type=float, default=0.1, help="temporal split: validation share")
    prepare.add_argument("--test-fraction", type=float, default=0.1, help="temporal split: test share")
    prepare.add_argument("--force", action="store_true", help="rebuild even if an up-to-date cache exists")
    prepare.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    prepare.set_defaults(handler=_cmd_prepare)

    synth = sub.add_parser("synth", help="generate a synthetic dataset", description="Generate a synthetic dataset (planted sequential structure, MovieLens-like shape).")
    synth.add_argument("--preset", choices=("tiny", "ml-100k", "ml-20m"), default="ml-100k")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    synth.set_defaults(handler=_cmd_synth)

    stats = sub.add_parser("stats", help="print a cached dataset's statistics", description="Print users, items, interactions and split sizes of a dataset directory.")
    stats.add_argument("dir", help="dataset directory (or its dataset.bin)")
    stats.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    stats.set_defaults(handler=_cmd_stats)
