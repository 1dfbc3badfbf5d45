"""`seqrec-fast train` and `seqrec-fast evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TRAIN_HELP = "train a backbone; every config key is also a --key value option"
EVALUATE_HELP = ("evaluate a run's best (or last) checkpoint on the validation and test splits (of a search: the "
                 "model it trained)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One --key option per training and model field (seqrec_fast.options), in two groups."""
    from ..options import add_arguments, fields, help_text
    from .config import ModelConfig, TrainConfig

    add_arguments(parser.add_argument_group("training options"), TrainConfig, exclude=("model",))
    model = parser.add_argument_group("model options")
    model.add_argument("--model", dest="model", default=argparse.SUPPRESS, metavar="NAME",
                       help=help_text(fields(ModelConfig)["name"]))
    add_arguments(model, ModelConfig, exclude=("name",))


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


OVERWRITE_HELP = "move an earlier run directory at --out aside (to OUT.old-<UTC time>, whole) and start afresh"


def add_run_command_options(parser: argparse.ArgumentParser, handler, *, resume_help: str, result: str) -> None:
    """What `train` and every `search NAME` take besides their own options: a YAML config,
    resume or overwrite, JSON output, then every training and model option."""
    parser.add_argument("--config", metavar="YAML", help="training config file; --key options override it")
    parser.add_argument("--resume", action="store_true",
                        help=f"{resume_help}; only --progress, --threads and --loader-threads may be given anew")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument("--json", action="store_true", help=f"print one JSON object ({result}) as the last line")
    _add_config_options(parser)
    _reject_unknown_options(parser)
    parser.set_defaults(handler=handler)


def register(commands) -> None:
    train = commands.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP)
    add_run_command_options(train, run_train, resume_help="continue the run in --out from its last checkpoint",
                            result="the result")

    evaluate = commands.add_parser("evaluate", help=EVALUATE_HELP, description=EVALUATE_HELP)
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument("--split", choices=("valid", "test", "both"), default="both")
    evaluate.add_argument("--data", help="where the run's dataset now is (default: the path the run recorded); "
                                         "its content must match the run's")
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


def interrupted(checkpoint: Path, resume: str) -> int:
    """Ctrl-C: say what is kept and how to continue; 130 is the shell's code for SIGINT."""
    if checkpoint.is_file():
        print(f"interrupted: the last checkpoint is {checkpoint}; resume with {resume}", file=sys.stderr)
    else:
        print("interrupted before the first checkpoint: nothing to resume; start again with --overwrite",
              file=sys.stderr)
    return 130


def resume_overrides(overrides: dict, what: str) -> dict:
    """The display-only options a resume may set anew; any other option is an error, since a
    resumed run continues with its own configuration."""
    from .run_dir import DISPLAY_ONLY

    display = {key: overrides.pop(key) for key in DISPLAY_ONLY if key in overrides}
    if overrides:
        from .config import ConfigError

        shown = ", ".join("--" + key.replace("_", "-") for key in overrides)
        allowed = ", ".join("--" + key.replace("_", "-") for key in DISPLAY_ONLY)
        raise ConfigError(f"--resume continues {what} with its own config; drop {shown} (only {allowed} may change)")
    return display


def _overrides(args: argparse.Namespace) -> dict:
    from .config import option_names

    return {key: getattr(args, key) for key in option_names() if hasattr(args, key)}


def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from . import distributed
    from .checkpoint import load_checkpoint  # noqa: F401  (import cost paid before timing matters)
    from .config import build_config
    from .data_source import absolute_spec, open_dataset
    from .limits import enforce_limits
    from .report import metrics_table, plot_training_curve
    from .run_dir import claim
    from .trainer import CHECKPOINT_DIR, CONFIG, LAST, METRICS, Trainer, TrainingDiverged

    overrides = _overrides(args)
    if args.resume:
        if args.overwrite:
            return _error("--resume continues the run in --out, --overwrite moves it aside: pass one of them")
        run_dir = Path(overrides.pop("out", "") or "")
        if not run_dir.name:
            return _error("--resume needs --out RUN_DIR")
        display = resume_overrides(overrides, "a run")
    else:
        config = build_config(args.config, overrides)
        if not config.out:
            return _error("no run directory: pass --out RUN_DIR")
        config.data = absolute_spec(config.data)
        run_dir = Path(config.out)
    checkpoint = run_dir / CHECKPOINT_DIR / LAST
    with claim(run_dir, "train", resume=args.resume, overwrite=args.overwrite) as lock:
        if lock.moved_aside is not None:
            print(f"seqrec-fast: moved the earlier {run_dir} aside to {lock.moved_aside}", file=sys.stderr)
        if args.resume:
            if not checkpoint.is_file():
                return _error(f"{run_dir} has no checkpoint to resume ({CHECKPOINT_DIR}/{LAST}); "
                              "start it again with --overwrite")
            config = build_config(run_dir / CONFIG, display)
            config.out = str(run_dir)
        try:
            dataset = open_dataset(config.data)
            enforce_limits(config, dataset, resume=args.resume)
            trainer = Trainer(config, dataset, resume=args.resume, started_at=started)
            main_process = distributed.is_main()
            result = trainer.fit()
            distributed.barrier()  # no rank leaves the group while a peer still talks to it
        except TrainingDiverged as error:
            print(f"seqrec-fast: training stopped: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return interrupted(checkpoint, "--resume")
        finally:
            distributed.teardown()
        if not main_process:
            return 0
        plot_training_curve(run_dir / METRICS, run_dir / "training_curve.png", config.metric)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{config.model.name} on {config.data} ({result['protocol']}); best epoch {result['best_epoch']} "
              f"of {result['epochs_run']}, {result['time_to_best_s']:.1f} s to the best epoch, "
              f"{result['train_samples_per_s']:.0f} training sequences/s")
        print(metrics_table({"valid": result["valid"], "test": result["test"]}))
        print(f"\nrun directory: {run_dir} (config.yaml, dataset.json, metrics.jsonl, result.json, "
              "training_curve.png, checkpoints/)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from . import distributed
    from .config import build_config, set_option
    from .data_source import absolute_spec, open_dataset
    from .report import metrics_table
    from .run_dir import check_dataset, run_kind
    from ..models import ModelSpec
    from ..serving.trained_run import locate, search_spec
    from .evaluation import evaluate_checkpoint
    from .trainer import BEST, CHECKPOINT_DIR, CONFIG, LAST

    run_dir = Path(args.run_dir)
    if run_kind(run_dir) == "search":
        run_dir = locate(run_dir).training_dir  # where the search's model was trained
    if run_kind(run_dir) != "train":
        return _error(f"{run_dir} holds no run, not a trained model")
    config = build_config(run_dir / CONFIG)
    for key in ("data", "filter_history", "ties", "eval_negatives"):
        if getattr(args, key) is not None:
            set_option(config, key, getattr(args, key))
    config.data = absolute_spec(config.data)
    splits = ("valid", "test") if args.split == "both" else (args.split,)
    checkpoint = run_dir / CHECKPOINT_DIR / (BEST if args.checkpoint == "best" else LAST)
    try:
        dataset = open_dataset(config.data)
        check_dataset(run_dir, config.data, dataset)
        spec_path = search_spec(run_dir)  # a search's retrain/ trained the model of the search's spec
        spec = ModelSpec.load(spec_path) if spec_path else None
        result = evaluate_checkpoint(config, dataset, checkpoint, splits, spec)
        distributed.barrier()
        main_process = distributed.is_main()
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
