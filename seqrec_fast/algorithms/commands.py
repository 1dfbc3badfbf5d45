"""`seqrec-fast search ALGO` and `seqrec-fast retrain RUN_DIR`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SEARCH_HELP = "search an architecture or loss weights (ADT); every training config key is also an option"
RETRAIN_HELP = "retrain the architecture a finished search chose, from scratch, and test it"
ALGORITHMS = ("adt",)


def _search_options() -> list[str]:
    from .adt_options import option_names  # torch-free, so that --help stays fast

    return option_names()


def register(commands) -> None:
    from ..train.commands import OVERWRITE_HELP, _add_config_options, _reject_unknown_options

    search = commands.add_parser("search", help=SEARCH_HELP, description=SEARCH_HELP)
    search.add_argument("algorithm", choices=ALGORITHMS, metavar="ALGO", help=f"one of: {', '.join(ALGORITHMS)}")
    search.add_argument("--backbone", dest="model", default=argparse.SUPPRESS, metavar="NAME",
                        help="backbone to search for (ADT: sasrec, bert4rec, stosa)")
    search.add_argument("--config", metavar="YAML", help="training config file; --key options override it")
    search.add_argument("--resume", action="store_true",
                        help="continue the search in --out after an interruption; only --progress, --threads and "
                             "--loader-threads may be given anew")
    search.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    search.add_argument("--json", action="store_true", help="print one JSON object (the search result) as the last line")
    for key in _search_options():
        search.add_argument("--" + key.replace("_", "-"), dest="search_" + key, default=argparse.SUPPRESS,
                            metavar=key.upper())
    _add_config_options(search)
    _reject_unknown_options(search)
    search.set_defaults(handler=run_search)

    retrain = commands.add_parser("retrain", help=RETRAIN_HELP, description=RETRAIN_HELP)
    retrain.add_argument("run_dir", metavar="RUN_DIR")
    retrain.add_argument("--overwrite", action="store_true",
                         help="move an earlier retraining aside (to RUN_DIR/retrain.old-<UTC time>) and retrain "
                              "from scratch; without it an interrupted retraining resumes")
    retrain.add_argument("--json", action="store_true", help="print one JSON object (the result) as the last line")
    _takes_no_training_options(retrain)
    retrain.set_defaults(handler=run_retrain)


def _takes_no_training_options(parser: argparse.ArgumentParser) -> None:
    """Retraining must use the configuration the search ran with: say so instead of listing
    training keys as if they were accepted."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = original(args, namespace)
        if extras:
            parser.error(f"unexpected {extras[0]!r}: retrain takes no training options, it uses the search's "
                         "configuration (RUN_DIR/config.yaml)")
        return namespace, extras

    parser.parse_known_args = parse_known_args


def _search_overrides(args: argparse.Namespace) -> dict[str, str]:
    return {key: getattr(args, "search_" + key) for key in _search_options() if hasattr(args, "search_" + key)}


def run_search(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..nas.search_run import STATE, SUPERNET, SearchRun
    from ..train.commands import _error, _overrides, interrupted, resume_overrides
    from ..train.config import build_config, set_option
    from ..train.data_source import absolute_spec, open_dataset
    from ..train.trainer import CHECKPOINT_DIR, LAST, TrainingDiverged
    from . import adt
    from .adt_options import parse_adt_options

    train_overrides, search_overrides = _overrides(args), _search_overrides(args)
    if args.resume:
        if args.overwrite:
            return _error("--resume continues the search in --out, --overwrite moves it aside: pass one of them")
        out = train_overrides.pop("out", "")
        if not out:
            return _error("--resume needs --out RUN_DIR")
        display = resume_overrides({**train_overrides, **search_overrides}, "a search")
        train, options = adt.load_search_config(SearchRun(out))
        for key, value in display.items():
            set_option(train, key, value)
    else:
        train = build_config(args.config, train_overrides, default_window=adt.WINDOW)
        options = parse_adt_options(search_overrides)
        if not train.out:
            return _error("no run directory: pass --out RUN_DIR")
        train.data = absolute_spec(train.data)
    run = SearchRun(train.out)
    try:
        dataset = open_dataset(train.data)
        result = adt.search(train, options, dataset, resume=args.resume, overwrite=args.overwrite)
    except TrainingDiverged as error:
        print(f"seqrec-fast: search stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        state = run.path(STATE)
        checkpoint = state if state.is_file() else run.path(SUPERNET) / CHECKPOINT_DIR / LAST
        return interrupted(checkpoint, f"--resume (seqrec-fast search {args.algorithm} --out {run.root} --resume)")
    payload = {**result.to_dict(), "wall_s": round(time.perf_counter() - started, 3)}
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"\nADT on {train.data} with {train.model.name}: best validation {result.metric} {result.fitness:.4f} "
              f"after {result.evaluations} candidates (warm-up {result.warmup_s:.0f} s, search {result.search_s:.0f} s)")
        print(_weights_table(result.architecture))
        print(f"\nrun directory: {result.run_dir} (best.json, candidates.jsonl, result.json, plots/); "
              f"next: seqrec-fast retrain {result.run_dir}")
    return 0


def _weights_table(weights: dict[str, list[float]]) -> str:
    kinds = list(weights)
    lines = ["layer" + "".join(k.rjust(16) for k in kinds)]
    for layer in range(len(weights[kinds[0]])):
        lines.append(f"{layer + 1:>5}" + "".join(f"{weights[k][layer]:16.3g}" for k in kinds))
    return "\n".join(lines)


def run_retrain(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..nas.search_run import RETRAIN, SearchRun
    from ..train.commands import interrupted
    from ..train.data_source import open_dataset
    from ..train.report import metrics_table
    from ..train.run_dir import RunDirError, run_kind
    from ..train.trainer import CHECKPOINT_DIR, LAST, TrainingDiverged
    from . import adt

    run_dir = Path(args.run_dir)
    if run_kind(run_dir) != "search":
        raise RunDirError(f"{run_dir} holds no search run: retrain takes the directory of a finished search")
    train, _ = adt.load_search_config(SearchRun(run_dir))
    try:
        result = adt.retrain(run_dir, open_dataset(train.data), started_at=started, overwrite=args.overwrite)
    except TrainingDiverged as error:
        print(f"seqrec-fast: retraining stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(run_dir / RETRAIN / CHECKPOINT_DIR / LAST, f"seqrec-fast retrain {run_dir}")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{train.model.name} retrained with the searched weights; best epoch {result['best_epoch']} of "
              f"{result['epochs_run']}, {result['time_to_best_s']:.1f} s to the best epoch")
        print(_weights_table(result["weights"]))
        print(metrics_table({"valid": result["valid"], "test": result["test"]}))
    return 0
