"""`seqrec-fast search NAME` (one subcommand per registered algorithm, its options generated
from the algorithm's options dataclass) and `seqrec-fast retrain RUN_DIR` (dispatched on the
algorithm the run directory records)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import registry

SEARCH_HELP = "search an architecture or loss weights with one of the registered algorithms"
RETRAIN_HELP = "retrain the model a finished search chose, from scratch, and test it"
SEARCH_PREFIX = "search_"  # the dest of an algorithm's own options, apart from the training keys


def register(commands) -> None:
    from ..train.commands import add_run_command_options
    from ..options import add_arguments
    from ..train.config import FAST_DEV_RUN_HELP

    names = registry.names()
    listing = "; ".join(f"{name}: {registry.get(name).summary}" for name in names)
    search = commands.add_parser("search", help=SEARCH_HELP, description=f"{SEARCH_HELP}. Algorithms: {listing}")
    algorithms = search.add_subparsers(dest="algorithm", metavar="ALGORITHM", required=True,
                                       title="algorithms")
    for name in names:
        algorithm = registry.get(name)
        sub = algorithms.add_parser(name, help=algorithm.summary, description=f"{algorithm.summary}. Every "
                                    "training option is also accepted.")
        sub.add_argument("--backbone", dest="model", default=argparse.SUPPRESS, metavar="NAME",
                         help=f"backbone to search with: {', '.join(algorithm.backbones)} (default: sasrec)")
        add_arguments(sub.add_argument_group(f"{name} options"), algorithm.options, dest_prefix=SEARCH_PREFIX)
        add_run_command_options(sub, run_search, resume_help="continue the search in --out after an interruption",
                                result="the search result")

    retrain = commands.add_parser("retrain", help=RETRAIN_HELP, description=RETRAIN_HELP)
    retrain.add_argument("run_dir", metavar="RUN_DIR")
    retrain.add_argument("--overwrite", action="store_true",
                         help="move an earlier retraining aside (to RUN_DIR/retrain.old-<UTC time>) and retrain "
                              "from scratch; without it an interrupted retraining resumes")
    retrain.add_argument("--fast-dev-run", action="store_true", help=FAST_DEV_RUN_HELP)
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
    return {key[len(SEARCH_PREFIX):]: value for key, value in vars(args).items() if key.startswith(SEARCH_PREFIX)}


def run_search(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..nas.search_loop import load_search_config
    from ..nas.search_run import CONFIG, RETRAIN, STATE, SUPERNET, SearchRun
    from ..options import parse_options
    from ..train.commands import _error, _overrides, interrupted, resume_overrides
    from ..train.config import build_config, set_option
    from ..train.data_source import absolute_spec, open_dataset
    from ..train.trainer import CHECKPOINT_DIR, LAST, TrainingDiverged

    algorithm = registry.get(args.algorithm)
    train_overrides, search_overrides = _overrides(args), _search_overrides(args)
    if args.resume:
        if args.overwrite:
            return _error("--resume continues the search in --out, --overwrite moves it aside: pass one of them")
        out = train_overrides.pop("out", "")
        if not out:
            return _error("--resume needs --out RUN_DIR")
        display = resume_overrides({**train_overrides, **search_overrides}, "a search")
        _, train, stored = load_search_config(SearchRun(out), algorithm.name)
        options = parse_options(algorithm.options, stored, where=f"{SearchRun(out).path(CONFIG)} search")
        for key, value in display.items():
            set_option(train, key, value)
    else:
        train = build_config(args.config, train_overrides, default_window=algorithm.default_window,
                             model_defaults=algorithm.model_defaults)
        options = parse_options(algorithm.options, search_overrides)
        if train.fast_dev_run:
            options = algorithm.fast_dev_run(options)
        if not train.out:
            return _error("no run directory: pass --out RUN_DIR")
        train.data = absolute_spec(train.data)
    run = SearchRun(train.out)
    try:
        dataset = open_dataset(train.data)
        result = algorithm.search(train, options, dataset, resume=args.resume, overwrite=args.overwrite)
    except TrainingDiverged as error:
        print(f"seqrec-fast: search stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        state = run.path(STATE)
        checkpoint = state if state.is_file() else run.path(SUPERNET) / CHECKPOINT_DIR / LAST
        return interrupted(checkpoint, f"--resume (seqrec-fast search {algorithm.name} --out {run.root} --resume)")
    payload = {**result.to_dict(), "wall_s": round(time.perf_counter() - started, 3)}
    if args.json:
        print(json.dumps(payload))
    else:
        print(f"\n{algorithm.headline(result, train)}")
        print(algorithm.describe(result))
        after = (f"seqrec-fast retrain {result.run_dir}" if algorithm.model_dir == RETRAIN else
                 f"the model is trained and tested in {algorithm.model_dir}/: seqrec-fast evaluate, recommend or "
                 f"export {result.run_dir}")
        print(f"\nrun directory: {result.run_dir} (result.json, spec.json, plots/); next: {after}")
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..nas.search_loop import load_search_config
    from ..nas.search_run import RETRAIN, SearchRun
    from ..train.commands import interrupted
    from ..train.data_source import open_dataset
    from ..train.report import metrics_table
    from ..train.run_dir import RunDirError, run_kind
    from ..train.trainer import CHECKPOINT_DIR, LAST, TrainingDiverged

    run_dir = Path(args.run_dir)
    if run_kind(run_dir) != "search":
        raise RunDirError(f"{run_dir} holds no search run: retrain takes the directory of a finished search")
    name, train, _ = load_search_config(SearchRun(run_dir))
    algorithm = registry.get(name)
    try:
        result = algorithm.retrain(run_dir, open_dataset(train.data), started_at=started, overwrite=args.overwrite,
                                   fast_dev_run=args.fast_dev_run)
    except TrainingDiverged as error:
        print(f"seqrec-fast: retraining stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(run_dir / RETRAIN / CHECKPOINT_DIR / LAST, f"seqrec-fast retrain {run_dir}")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{train.model.name} retrained as the {name} search chose; best epoch {result['best_epoch']} of "
              f"{result['epochs_run']}, {result['time_to_best_s']:.1f} s to the best epoch")
        print(metrics_table({"valid": result["valid"], "test": result["test"]}))
    return 0
