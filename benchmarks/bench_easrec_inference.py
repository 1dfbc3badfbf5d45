"""Measured, not counted: full-ranking inference for every user of a dataset with each of EASRec's
architectures, against the full model and against a softmax-attention SASRec of the full model's
size.

For each model: the test split's inputs of every user in batches of ``--batch`` users, each batch
scored against every item, the user's history filtered out and the top 10 taken, on the CPU; the
median of ``--repeats`` passes after one untimed pass, at each thread count. The weights are
freshly initialised: the work of ranking does not depend on their values. Each row has the
model's multiply-adds to rank every item after one full-length sequence (torch's FLOP counter over
``predict`` under the pure-PyTorch reference operators) and its time and multiply-adds as
fractions of the full EASRec model's; the claims are the issue's: every time ratio within 0.15
of its multiply-add ratio, and at least 30% faster wherever the multiply-adds are at most half.

    python benchmarks/bench_easrec_inference.py --data ../shared/data/ml-100k [--max-len 200] \\
        [--threads 1,2] [--batch 256] [--repeats 5] [--gates two]

Writes benchmarks/results/easrec_inference_<dataset>.json."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, write_result  # noqa: E402

from seqrec_fast import ops  # noqa: E402
from seqrec_fast.algorithms.easrec import search as easrec  # noqa: E402
from seqrec_fast.algorithms.easrec.options import EASRecConfig  # noqa: E402
from seqrec_fast.models import ModelConfig, build_model  # noqa: E402
from seqrec_fast.nas.cost import counted  # noqa: E402
from seqrec_fast.train.data_source import open_dataset  # noqa: E402
from seqrec_fast.train.evaluation import full_ranking_candidates  # noqa: E402

K = 10
TIME_TOLERANCE = 0.15  # |time ratio - multiply-add ratio| the issue allows
HALF_SPEEDUP = 0.30  # at most half the multiply-adds must take at least 30% less time


def test_batches(dataset, max_len: int, batch: int) -> list[dict]:
    """Every user's test input and history, batched once so that loading is not timed."""
    loader = dataset.eval_loader(split="test", batch_size=batch, max_len=max_len)
    return [{"inputs": torch.from_numpy(np.asarray(b["inputs"])).long(), "offsets": b["history_offsets"],
             "items": b["history_items"]} for b in loader]


def rank_everyone(model: torch.nn.Module, batches: list[dict]) -> None:
    with torch.no_grad():
        for batch in batches:
            scores = model.predict(batch["inputs"])
            candidates = full_ranking_candidates(len(scores), scores.shape[1], batch["offsets"], batch["items"],
                                                 True, scores.device)
            scores.masked_fill_(~candidates, float("-inf")).topk(K, dim=1)


def seconds(model: torch.nn.Module, batches: list[dict], repeats: int) -> float:
    rank_everyone(model, batches)  # first-call allocations and op loading
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        rank_everyone(model, batches)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def multiply_adds(model: torch.nn.Module, max_len: int, n_items: int) -> int:
    sequence = torch.randint(1, n_items + 1, (1, max_len))
    with ops.reference_ops():
        return counted(model, sequence, method="predict").multiply_adds


def models(n_items: int, max_len: int, gates: str) -> list[tuple[str, torch.nn.Module]]:
    """Every EASRec architecture at its own width (the full model first), then SASRec with
    softmax attention at the full model's width, depth, inner size and heads."""
    options = EASRecConfig(gates=gates)
    full = ModelConfig(name="sasrec", hidden_size=64, inner_size=256, num_layers=options.layers, num_heads=4,
                       max_len=max_len, dropout=0.0, attn_dropout=0.0)
    space = easrec.space_of(full, options)
    full_architecture = (0, options.layers)
    order = [full_architecture, *(a for a in space.architectures if a != full_architecture)]
    built = [(f"easrec {space.architecture(i, depth)}",
              easrec.ElasticSASRec(easrec.derived_config(full, space, i, depth), n_items, gates))
             for i, depth in order]
    sasrec = build_model(full, n_items)
    return built + [(f"sasrec softmax {full.hidden_size}x{full.num_layers}", sasrec)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gates", default="two", choices=("two", "one", "none"))
    args = parser.parse_args()
    dataset = open_dataset(str(Path(args.data).resolve()) if Path(args.data).exists() else args.data)
    batches = test_batches(dataset, args.max_len, args.batch)
    torch.manual_seed(0)
    built = [(name, model.eval()) for name, model in models(dataset.n_items, args.max_len, args.gates)]
    rows = [{"model": name, "multiply_adds": multiply_adds(model, args.max_len, dataset.n_items),
             "params": sum(p.numel() for p in model.parameters()), "seconds": {}} for name, model in built]
    thread_counts = [int(t) for t in args.threads.split(",")]
    for count in thread_counts:
        torch.set_num_threads(count)
        for row, (name, model) in zip(rows, built):
            row["seconds"][str(count)] = round(seconds(model, batches, args.repeats), 4)
            print(f"{count} thread(s)  {name:<22} {row['seconds'][str(count)]:.3f} s", flush=True)
    full = rows[0]
    claims = []
    for row in rows:
        row["macs_ratio"] = round(row["multiply_adds"] / full["multiply_adds"], 4)
        row["time_ratio"] = {t: round(s / full["seconds"][t], 4) for t, s in row["seconds"].items()}
        if row["model"].startswith("easrec") and row is not full:
            for t, ratio in row["time_ratio"].items():
                claims.append({"model": row["model"], "threads": int(t), "macs_ratio": row["macs_ratio"],
                               "time_ratio": ratio,
                               "within_tolerance": abs(ratio - row["macs_ratio"]) <= TIME_TOLERANCE,
                               "at_least_30pct_faster": None if row["macs_ratio"] > 0.5
                               else ratio <= 1 - HALF_SPEEDUP})
    print(f"\n{'model':<22} {'MACs':>12} {'MAC ratio':>9} " + " ".join(f"{t + ' thr s':>9} {'ratio':>6}"
                                                                    for t in full["seconds"]))
    for row in rows:
        print(f"{row['model']:<22} {row['multiply_adds']:>12,} {row['macs_ratio']:>9.3f} "
              + " ".join(f"{row['seconds'][t]:>9.3f} {row['time_ratio'][t]:>6.3f}" for t in full["seconds"]))
    failed = [c for c in claims if not c["within_tolerance"] or c["at_least_30pct_faster"] is False]
    print(f"\n{len(claims) - len(failed)} of {len(claims)} (architecture, threads) rows meet both claims")
    name = Path(args.data).name
    write_result(RESULTS / f"easrec_inference_{name}.json",
                 {"machine": machine(threads=thread_counts), "data": args.data, "users": dataset.n_users,
                  "items": dataset.n_items, "max_len": args.max_len, "batch": args.batch, "repeats": args.repeats,
                  "gates": args.gates, "rows": rows, "claims": claims})


if __name__ == "__main__":
    main()
