"""Measured: what a CANet training step costs on the CPU with each row's route run grouped and
sliced at its own widths (the training path), against the masked full-width forward that computes
the same function at the widest tensor widths (the reference the tests hold it to).

The steps are the search's own: its trainer and callbacks (`seqrec-fast search canet` with its
defaults) build the model, the routing losses and the training batches of the first epoch;
each timed step is a forward (the Gumbel route sample, the backbone, the CE over the classifier and
the uniform and guide losses) and a backward. The two paths take turns on the same batches in
interleaved rounds, so that a machine that slows down during the run does not favour either; the
weights are not stepped, so both see the same routes.

    python benchmarks/bench_canet_train.py --data ../shared/data/ml-100k [--threads 1] [--steps 20] \\
        [--repeats 3] [--output PATH]

Writes benchmarks/results/canet_train_<dataset>.json (or --output) and prints the per-step medians."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, write_result  # noqa: E402

from seqrec_fast.algorithms.canet import ALGORITHM  # noqa: E402
from seqrec_fast.algorithms.canet import search as canet  # noqa: E402
from seqrec_fast.algorithms.canet.options import CANetConfig  # noqa: E402
from seqrec_fast.options import parse_options  # noqa: E402
from seqrec_fast.train.config import build_config  # noqa: E402
from seqrec_fast.train.data_source import open_dataset  # noqa: E402
from seqrec_fast.train.trainer import Trainer  # noqa: E402

WARMUP = 2  # untimed steps per path first: allocations, op loading, caches


def trainer_for(data: str, out: str, threads: int) -> Trainer:
    """The trainer of `seqrec-fast search canet --data DATA` (its defaults) writing into ``out``."""
    train = build_config(None, {"data": data, "out": out, "threads": str(threads), "progress": "false"},
                         default_window=ALGORITHM.default_window, model_defaults=ALGORITHM.model_defaults)
    options = parse_options(CANetConfig, {})
    dataset = open_dataset(data)
    train = dataclasses.replace(train, model=canet.model_config(train, options))
    spec = canet.spec_of(train.model, options)
    return Trainer(dataclasses.replace(train, model=spec.model), dataset,
                   callbacks=canet.JointTraining(spec, options, train, dataset))


def step(trainer: Trainer, index: int, batch: dict) -> None:
    trainer.callbacks.before_batch(0, index)
    inputs, targets, negatives = trainer._batch_tensors(batch)
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.train_module(inputs, targets, negatives).backward()


def time_paths(trainer: Trainer, batches: list[dict], repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each path, one entry per (round, batch). The model's training forward
    calls ``backbone.grouped``; pointing it at ``masked`` for a turn times the reference path."""
    backbone = trainer.model.backbone
    grouped = backbone.grouped
    paths = {"grouped": grouped, "masked": backbone.masked}
    trainer.train_module.train()
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for name, path in paths.items():
            backbone.grouped = path
            for index in range(WARMUP):
                step(trainer, index, batches[index])
        for _ in range(repeats):
            for name, path in paths.items():
                backbone.grouped = path
                for index, batch in enumerate(batches):
                    started = time.perf_counter()
                    step(trainer, index, batch)
                    times[name].append(time.perf_counter() - started)
    finally:
        backbone.grouped = grouped
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="batches of the first epoch timed per round")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds over those batches")
    parser.add_argument("--output", help="the JSON file (default benchmarks/results/canet_train_<dataset>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        trainer = trainer_for(args.data, out, args.threads)
        batches = [batch for _, batch in zip(range(args.steps), trainer.train_loader.epoch(0))]
        times = time_paths(trainer, batches, args.repeats)
        windows = [len(batch["inputs"]) for batch in batches]
        steps_per_epoch = trainer.steps_per_epoch
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "canet_train", "data": args.data, "threads": args.threads,
        "steps_timed": args.steps, "repeats": args.repeats, "windows_per_batch": statistics.mean(windows),
        "steps_per_epoch": steps_per_epoch, "median_step_s": medians,
        "epoch_s_at_median": {name: value * steps_per_epoch for name, value in medians.items()},
        "grouped_time_fraction": medians["grouped"] / medians["masked"], "step_s": times, "machine": machine(),
    }
    name = Path(args.data.rstrip("/")).name
    output = Path(args.output) if args.output else RESULTS / f"canet_train_{name}.json"
    write_result(output, result)
    for path, value in medians.items():
        print(f"{path:>8}: {value * 1000:8.1f} ms per step, {value * steps_per_epoch:7.1f} s per epoch of "
              f"{steps_per_epoch} steps")
    print(f"grouped / masked: {result['grouped_time_fraction']:.2f}; written to {output}")


if __name__ == "__main__":
    main()
