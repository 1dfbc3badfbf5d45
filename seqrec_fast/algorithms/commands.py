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
    from ..train.commands import _add_config_options, _reject_unknown_options

    search = commands.add_parser("search", help=SEARCH_HELP, description=SEARCH_HELP)
    search.add_argument("algorithm", choices=ALGORITHMS, metavar="ALGO", help=f"one of: {', '.join(ALGORITHMS)}")
    search.add_argument("--backbone", dest="model", default=argparse.SUPPRESS, metavar="NAME",
                        help="backbone to search for (ADT: sasrec, bert4rec, stosa)")
    search.add_argument("--config", metavar="YAML", help="training config file; --key options override it")
    search.add_argument("--resume", action="store_true", help="continue the search in --out after an interruption")
    search.add_argument("--json", action="store_true", help="print one JSON object (the search result) as the last line")
    for key in _search_options():
        search.add_argument("--" + key.replace("_", "-"), dest="search_" + key, default=argparse.SUPPRESS,
                            metavar=key.upper())
    _add_config_options(search)
    _reject_unknown_options(search)
    search.set_defaults(handler=run_search)

    retrain = commands.add_parser("retrain", help=RETRAIN_HELP, description=RETRAIN_HELP)
    retrain.add_argument("run_dir", metavar="RUN_DIR")
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


def _error(message: str) -> int:
    print(f"seqrec-fast: error: {message}", file=sys.stderr)
    return 2


def _search_overrides(args: argparse.Namespace) -> dict[str, str]:
    return {key: getattr(args, "search_" + key) for key in _search_options() if hasattr(args, "search_" + key)}


def run_search(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..nas.search_run import SearchRun
    from ..train.commands import _overrides
    from ..train.config import ConfigError, build_config
    from ..train.data_source import open_dataset
    from . import adt
    from .adt_options import parse_adt_options

    try:
        train_overrides, search_overrides = _overrides(args), _search_overrides(args)
        if args.resume:
            out = train_overrides.pop("out", "")
            if not out:
                return _error("--resume needs --out RUN_DIR")
            if train_overrides or search_overrides:
                shown = [*train_overrides, *search_overrides]
                return _error(f"--resume continues a search with its own config; drop "
                              f"{', '.join('--' + k.replace('_', '-') for k in shown)}")
            train, options = adt.load_search_config(SearchRun(out))
        else:
            train = build_config(args.config, train_overrides, default_window=adt.WINDOW)
            options = parse_adt_options(search_overrides)
            if not train.out:
                return _error("no run directory: pass --out RUN_DIR")
        dataset = open_dataset(train.data)
        result = adt.search(train, options, dataset, resume=args.resume)
    except ConfigError as error:
        return _error(str(error))
    except (ValueError, FileNotFoundError) as error:
        return _error(str(error))
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
    from ..train.config import ConfigError
    from ..train.data_source import open_dataset
    from ..train.report import metrics_table, plot_training_curve
    from ..train.trainer import METRICS, TrainingDiverged
    from . import adt

    run_dir = Path(args.run_dir)
    try:
        from ..nas.search_run import RETRAIN, SearchRun

        train, _ = adt.load_search_config(SearchRun(run_dir))
        result = adt.retrain(run_dir, open_dataset(train.data), started_at=started)
    except TrainingDiverged as error:
        print(f"seqrec-fast: retraining stopped: {error}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, FileNotFoundError) as error:
        return _error(str(error))
    plot_training_curve(run_dir / RETRAIN / METRICS, run_dir / RETRAIN / "training_curve.png", train.metric)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{train.model.name} retrained with the searched weights; best epoch {result['best_epoch']} of "
              f"{result['epochs_run']}, {result['time_to_best_s']:.1f} s to the best epoch")
        print(_weights_table(result["weights"]))
        print(metrics_table({"valid": result["valid"], "test": result["test"]}))
    return 0

