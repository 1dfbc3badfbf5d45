"""Training throughput and peak memory of SASRec on the ml-20m synthetic preset (138,493 users,
26,744 items): the fused, chunked full-softmax CE against the unfused one that materialises the
[B·L, n_items] logits.

    python benchmarks/bench_train.py [--steps 10] [--max-len 50] [--batch-size 256] [--device auto] [--out DIR]

Each variant runs in its own process so that peak memory is its own: on GPU
torch.cuda.max_memory_allocated, on CPU the highest RSS sampled during the steps, both minus what
the process held before the first step. Prints a table; writes bench_train_{cpu,gpu}_len{L}.json
(bench_train_loss_only_len{L}.json with --loss-only) into --out, benchmarks/results by default."""

from __future__ import annotations

import argparse
import json
import os
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import RESULTS, machine, write_result


class RssSampler:
    """Highest resident set size seen by a background thread polling /proc/self/statm."""

    def __init__(self, interval_s: float = 0.002):
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.current()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def measure(args) -> dict:
    """One variant, in this process."""
    import torch

    from seqrec_fast.data import synthesize
    from seqrec_fast.train.config import build_config
    from seqrec_fast.train.trainer import Trainer

    dataset = synthesize("ml-20m", seed=0)
    with tempfile.TemporaryDirectory() as out:
        config = build_config(overrides={
            "model": "sasrec", "out": out, "max_len": args.max_len, "hidden_size": 64, "num_layers": 2,
            "num_heads": 2, "batch_size": args.batch_size, "loss": "ce", "fused_ce": args.variant == "fused",
            "device": args.device, "progress": False, "window": "last"})
        trainer = Trainer(config, dataset, log=lambda message: None)
        device = trainer.device
        batches = trainer.train_loader.epoch(0)

        def step() -> int:
            inputs, targets, negatives = trainer._batch_tensors(next(batches))
            with trainer._autocast():
                loss = trainer.train_module(inputs, targets, negatives)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
            return len(inputs)

        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.memory_allocated()
        with RssSampler() as rss:
            baseline_rss = rss.peak
            step()  # warm-up (its memory peak counts, its time does not)
            samples, started = 0, time.perf_counter()
            for _ in range(args.steps):
                samples += step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        peak = (torch.cuda.max_memory_allocated() - baseline) if device.type == "cuda" else rss.peak - baseline_rss
    return {"variant": args.variant, "device": str(device), "steps": args.steps, "batch_size": args.batch_size,
            "max_len": args.max_len, "samples_per_s": round(samples / seconds, 1),
            "step_ms": round(1000 * seconds / args.steps, 1), "peak_memory_mb": round(peak / 2**20, 1),
            "peak_memory_kind": ("cuda max_memory_allocated above the model and data" if device.type == "cuda"
                                 else "CPU peak RSS above the model and data, sampled every 2 ms"),
            "torch_threads": torch.get_num_threads()}


def measure_loss_only(args) -> dict:
    """Forward + backward of the fused full-softmax CE alone for B·L rows of a random d=64
    representation against all 26,744 items: the memory the loss itself needs."""
    import torch

    from seqrec_fast.train.fused_cross_entropy import linear_cross_entropy

    rows, items = args.batch_size * args.max_len, 26_744
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(rows, 64, generator=generator, requires_grad=True)
    weight = (0.02 * torch.randn(items, 64, generator=generator)).requires_grad_()
    targets = torch.randint(0, items, (rows,), generator=generator)
    gc.collect()
    with RssSampler() as rss:
        baseline = rss.peak
        started = time.perf_counter()
        linear_cross_entropy(hidden, weight, None, targets).backward()
        seconds = time.perf_counter() - started
    unfused_floor = 2 * rows * items * 4  # logits and their gradient, fp32, at the least
    return {"variant": "fused loss only", "rows": rows, "items": items, "seconds": round(seconds, 2),
            "peak_memory_mb": round((rss.peak - baseline) / 2**20, 1),
            "unfused_logits_and_grad_mb_at_least": round(unfused_floor / 2**20, 1),
            "peak_memory_kind": "CPU peak RSS above the inputs, sampled every 2 ms"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default="fused,unfused")
    parser.add_argument("--loss-only", action="store_true",
                        help="measure the fused loss alone at B·L rows (no model, no data)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON result")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: measure one variant here
    args = parser.parse_args()
    if args.loss_only:
        row = measure_loss_only(args)
        print(json.dumps(row))
        payload = {"benchmark": "fused full-softmax CE alone, d=64", "command": " ".join([Path(sys.executable).name, *sys.argv]),
                   "machine": machine(note="CPU shared with other jobs"),
                   "rows": [row]}
        write_result(Path(args.out) / f"bench_train_loss_only_len{args.max_len}.json", payload)
        return 0
    if args.variant:
        print(json.dumps(measure(args)))
        return 0
    rows = []
    for variant in args.variants.split(","):
        command = [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps), "--max-len",
                   str(args.max_len), "--batch-size", str(args.batch_size), "--device", args.device]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            rows.append({"variant": variant, "error": completed.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(f"{'variant':<9}{'device':>8}{'samples/s':>12}{'step ms':>10}{'peak MB':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<9} failed: {row['error']}")
        else:
            print(f"{row['variant']:<9}{row['device']:>8}{row['samples_per_s']:>12}{row['step_ms']:>10}{row['peak_memory_mb']:>10}")
    payload = {"benchmark": "SASRec training step on the ml-20m synthetic preset (26,744 items), d=64, 2 layers, 2 heads",
               "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "machine": machine(note="CPU shared with other jobs"),
               "rows": rows}
    device = "cpu" if all(r.get("device", "cpu") == "cpu" for r in rows) else "gpu"
    write_result(Path(args.out) / f"bench_train_{device}_len{args.max_len}.json", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
