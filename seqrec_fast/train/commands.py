"""`seqrec-fast train` and `seqrec-fast evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TRAIN_HELP = "train a backbone; every config key is also a --key value option"
EVALUATE_HELP = "evaluate a run's best (or last) checkpoint on the validation and test splits"


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One --key option per config field, parsed as text so that config.py checks the types and
    names the key in its errors; booleans also get --no-key."""
    from .config import ModelConfig, TrainConfig, _field_types

    types = {**_field_types(ModelConfig), **_field_types(TrainConfig)}
    for key in sorted(set(types) - {"model", "name"}):
        flag = "--" + key.replace("_", "-")
        if types[key] is bool:
            parser.add_argument(flag, dest=key, nargs="?", const="true", default=argparse.SUPPRESS, metavar="BOOL")
            parser.add_argument("--no-" + key.replace("_", "-"), dest=key, action="store_const", const="false",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, dest=key, default=argparse.SUPPRESS, metavar=key.upper())
    parser.add_argument("--model", dest="model", default=argparse.SUPPRESS, metavar="NAME",
                        help="backbone: bert4rec, gru4rec, nextitnet, sasrec, stosa")


def _reject_unknown_options(parser: argparse.ArgumentParser) -> None:
    """argparse reports unknown options from the top-level parser without the valid ones;
    list them here instead."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = original(args, namespace)
        if extras:
            from .config import _unknown_key

            unknown = next((e for e in extras if e.startswith("--")), extras[0])
            if unknown.startswith("--"):
                parser.error(str(_unknown_key(unknown[2:].split("=")[0].replace("-", "_"))))
            parser.error(f"unexpected argument {unknown!r}")
        return namespace, extras

    parser.parse_known_args = parse_known_args


def register(commands) -> None:
    train = commands.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP)
    train.add_argument("--config", metavar="YAML", help="config file; --key options override it")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--json", action="store_true", help="print one JSON object (the result) as the last line")
    _add_config_options(train)
    _reject_unknown_options(train)
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help=EVALUATE_HELP, description=EVALUATE_HELP)
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument("--split", choices=("valid", "test", "both"), default="both")
    evaluate.add_argument("--data", help="dataset to evaluate on (default: the run's own)")
    evaluate.add_argument("--filter-history", dest="filter_history", action="store_const", const="true")
    evaluate.add_argument("--no-filter-history", dest="filter_history", action="store_const", const="false")
    evaluate.add_argument("--ties", choices=("pessimistic", "expected"))
    evaluate.add_argument("--eval-negatives", metavar="N", help="sampled metrics against N fixed negatives")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _reject_unknown_options(evaluate)
    evaluate.set_defaults(handler=run_evaluate)


def _error(message: str) -> int:
    print(f"seqrec-fast: error: {message}", file=sys.stderr)
    return 2


def _overrides(args: argparse.Namespace) -> dict:
    from .config import option_names

    return {key: getattr(args, key) for key in option_names() if hasattr(args, key)}


def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from . import distributed
    from .checkpoint import load_checkpoint  # noqa: F401  (import cost paid before timing matters)
    from .config import ConfigError, build_config
    from .data_source import open_dataset
    from .limits import enforce_limits
    from .report import metrics_table, plot_training_curve
    from .trainer import CHECKPOINT_DIR, CONFIG, LAST, METRICS, Trainer, TrainingDiverged

    overrides = _overrides(args)
    try:
        if args.resume:
            run_dir = Path(overrides.pop("out", "") or "")
            if not run_dir.name:
                return _error("--resume needs --out RUN_DIR")
            if overrides:
                return _error(f"--resume continues a run with its own config; drop {', '.join('--' + k.replace('_', '-') for k in overrides)}")
            if not (run_dir / CHECKPOINT_DIR / LAST).is_file():
                return _error(f"{run_dir} has no checkpoint to resume ({CHECKPOINT_DIR}/{LAST})")
            config = build_config(run_dir / CONFIG)
        else:
            config = build_config(args.config, overrides)
            if not config.out:
                return _error("no run directory: pass --out RUN_DIR")
            if (Path(config.out) / CHECKPOINT_DIR / LAST).exists():
                return _error(f"{config.out} already holds a run; pass --resume to continue it or choose another --out")
        dataset = open_dataset(config.data)
        enforce_limits(config, dataset, resume=args.resume)
        trainer = Trainer(config, dataset, resume=args.resume, started_at=started)
        main_process = distributed.is_main()
        result = trainer.fit()
    except ConfigError as error:
        return _error(str(error))
    except TrainingDiverged as error:
        print(f"seqrec-fast: training stopped: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:
        return _error(str(error))
    finally:
        distributed.teardown()
    if not main_process:
        return 0
    run_dir = Path(config.out)
    plot_training_curve(run_dir / METRICS, run_dir / "training_curve.png", config.metric)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{config.model.name} on {config.data} ({result['protocol']}); best epoch {result['best_epoch']} "
              f"of {result['epochs_run']}, {result['time_to_best_s']:.1f} s to the best epoch, "
              f"{result['train_samples_per_s']:.0f} training sequences/s")
        print(metrics_table({"valid": result["valid"], "test": result["test"]}))
        print(f"\nrun directory: {run_dir} (config.yaml, metrics.jsonl, result.json, training_curve.png, checkpoints/)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from . import distributed
    from .config import ConfigError, build_config, set_option
    from .data_source import open_dataset
    from .report import metrics_table
    from .trainer import BEST, CHECKPOINT_DIR, CONFIG, LAST, evaluate_checkpoint

    run_dir = Path(args.run_dir)
    try:
        config = build_config(run_dir / CONFIG)
        for key in ("data", "filter_history", "ties", "eval_negatives"):
            if getattr(args, key) is not None:
                set_option(config, key, getattr(args, key))
        splits = ("valid", "test") if args.split == "both" else (args.split,)
        checkpoint = run_dir / CHECKPOINT_DIR / (BEST if args.checkpoint == "best" else LAST)
        result = evaluate_checkpoint(config, open_dataset(config.data), checkpoint, splits)
        main_process = distributed.is_main()
    except (ConfigError, ValueError, FileNotFoundError) as error:
        return _error(str(error))
    finally:
        distributed.teardown()
    if not main_process:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} from {checkpoint} ({result['protocol']})")
        print(metrics_table({split: result[split] for split in splits}))
    return 0
