"""Measured, not counted: what each CANet route costs on the CPU, and what routing saves end to end,
for a finished `seqrec-fast search canet` run.

Per route of the run's space (36 by default): its embedding, hidden width and depth, parameters
and multiply-adds (seqrec_fast.nas.cost, the functions the search itself scores routes with), and
the median time (after warm-up calls) of ranking every item for the first B validation users at
each batch size B: the route run sliced to its own widths and its own exit (`model.on_route(r)`
then `predict`, the path the search's evaluation and timing take). The routes are timed in
interleaved rounds (every route once per round) so that a machine that slows down or speeds up
during the run does not bias the ranking of the routes. Claim: Spearman's rank correlation between
multiply-adds and time is at least 0.9 at every batch size.

End to end, for every user of --split in batches of --batch: the routed model as the search serves
it (`predict`: the router's argmax, rows grouped by route, each group sliced to its exit, every item
scored), the full model (every user on the largest route) and the router alone, timed in
interleaved passes; with the users' mean route multiply-adds (their routes from
`canet.routing.split_routes`) as a fraction of the full model's, without and with the router's.
Claim: wherever the routes' mean multiply-adds are at most half the full model's, routed
inference is at least 40% faster (otherwise not applicable). History filtering and top-k are left
out: they cost every model the same and would only dilute the difference.

    python benchmarks/bench_canet_latency.py runs/canet [--threads 1] [--batch-sizes 1,64] \\
        [--repeats 10] [--batch 256] [--split test] [--output PATH]

Writes benchmarks/results/canet_latency_<dataset>.json (or --output) and prints the tables."""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr  # scipy comes with POT, a dependency of the package

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, write_result  # noqa: E402

from seqrec_fast import load  # noqa: E402
from seqrec_fast.algorithms.canet.routing import split_routes  # noqa: E402
from seqrec_fast.nas.cost import sequence_router  # noqa: E402
from seqrec_fast.train.config import build_config  # noqa: E402

WARMUP = 2  # untimed calls first: allocations, op loading, caches
SPEARMAN_AT_LEAST = 0.9
HALF = 0.5  # the routes' mean multiply-adds at most this fraction of the full model's ...
FASTER_BY = 0.40  # ... must take at least this much less time


# -- the run ------------------------------------------------------------------------------------------
def trained_canet(run_dir: str):
    """(model on the CPU in eval mode, dataset, training configuration, the search's result) of a
    finished CANet run."""
    recommender = load(run_dir, device="cpu")
    if recommender.spec.algorithm != "canet":
        raise SystemExit(f"{run_dir} holds a {recommender.spec.algorithm or recommender.spec.model.name} model, "
                         "not a CANet search")
    model = recommender.model.eval()
    if model.router is None:
        raise SystemExit(f"{run_dir} trained one fixed route (--route): there is no routing to measure")
    result = json.loads((recommender.run.root / "result.json").read_text())
    return model, recommender.dataset, build_config(recommender.run.config_path), result


def split_batches(dataset, train, split: str, batch: int) -> list[torch.Tensor]:
    """Every user's input window of ``split``, in batches of ``batch`` users, loaded once so that
    loading is never timed."""
    loader = dataset.eval_loader(split=split, batch_size=batch, max_len=train.model.max_len, seed=train.seed)
    return [torch.from_numpy(np.asarray(b["inputs"])).long() for b in loader]


def route_costs(model, dataset, train) -> list[dict]:
    """Every route's widths, depth, parameters and multiply-adds as the search's cost model counts them."""
    rows = []
    for index, route in enumerate(model.space.routes):
        cost = model.space.cost(index, dataset.n_items, train.model.max_len)
        rows.append({"route": str(route), "embedding": route.embedding, "hidden": route.hidden,
                     "depth": route.depth, "params": cost.params, "multiply_adds": cost.multiply_adds})
    return rows


# -- timing -------------------------------------------------------------------------------------------
def interleaved_medians(works: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each work over ``repeats`` rounds, every work once per round, after
    WARMUP untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in works}
    with torch.no_grad():
        for round_index in range(WARMUP + repeats):
            for name, work in works.items():
                started = time.perf_counter()
                work()
                if round_index >= WARMUP:
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def route_scorer(model, route: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Scores of every item for each row of its inputs on ``route``, sliced to its widths and exit."""
    def score(inputs: torch.Tensor) -> torch.Tensor:
        with model.on_route(route):
            return model.predict(inputs)
    return score


def over_batches(function: Callable[[torch.Tensor], object], batches: list[torch.Tensor]) -> Callable[[], None]:
    def work():
        for inputs in batches:
            function(inputs)
    return work


# -- per route ----------------------------------------------------------------------------------------
def time_routes(model, rows: list[dict], windows: torch.Tensor, batch_sizes: list[int], repeats: int) -> None:
    """Adds each route's median milliseconds at each batch size (its first B validation windows)."""
    for size in batch_sizes:
        inputs = windows[:size]
        medians = interleaved_medians({row["route"]: functools.partial(route_scorer(model, index), inputs)
                                       for index, row in enumerate(rows)}, repeats)
        for row in rows:
            row.setdefault("ms", {})[str(size)] = round(1000 * medians[row["route"]], 4)
        print(f"timed {len(rows)} routes at batch {size}", file=sys.stderr, flush=True)


def rank_correlations(rows: list[dict], batch_sizes: list[int]) -> dict[str, dict]:
    """Spearman's rho between multiply-adds and time at each batch size, with the claim."""
    macs = [row["multiply_adds"] for row in rows]
    out = {}
    for size in batch_sizes:
        rho = float(spearmanr(macs, [row["ms"][str(size)] for row in rows])[0])
        out[str(size)] = {"spearman": round(rho, 4), "at_least": SPEARMAN_AT_LEAST, "pass": rho >= SPEARMAN_AT_LEAST}
    return out


# -- end to end ---------------------------------------------------------------------------------------
def routed_inference(model, dataset, train, split: str, batch: int, rows: list[dict], repeats: int) -> dict:
    """Routed against full-model inference for every user of ``split``, the router timed alone,
    and the users' mean multiply-adds."""
    batches = split_batches(dataset, train, split, batch)
    largest = len(model.space) - 1
    medians = interleaved_medians({"routed": over_batches(model.predict, batches),
                                   "full": over_batches(route_scorer(model, largest), batches),
                                   "router": over_batches(model.routes, batches)}, repeats)
    _, routes, _ = split_routes(model, dataset, train, split, torch.device("cpu"))
    route_macs = np.array([row["multiply_adds"] for row in rows])
    shape = model.router.shape
    router_macs = sequence_router(shape.width, shape.inner, len(model.space), dataset.n_items,
                                  train.model.max_len).multiply_adds
    mean_route_macs = float(route_macs[routes].mean())
    full_macs = int(route_macs[largest])
    return {"split": split, "users": int(len(routes)), "batch": batch,
            "routed_s": round(medians["routed"], 4), "full_s": round(medians["full"], 4),
            "router_s": round(medians["router"], 4),
            "time_ratio": round(medians["routed"] / medians["full"], 4),
            "router_share_of_routed": round(medians["router"] / medians["routed"], 4),
            "mean_route_multiply_adds": mean_route_macs, "router_multiply_adds": router_macs,
            "full_multiply_adds": full_macs,
            "macs_fraction": round(mean_route_macs / full_macs, 4),
            "macs_fraction_with_router": round((mean_route_macs + router_macs) / full_macs, 4),
            "route_counts": np.bincount(routes, minlength=len(model.space)).tolist()}


def speedup_claim(end_to_end: dict) -> dict:
    """At least 40% faster wherever the routes' mean multiply-adds are at most half the full model's."""
    applies = end_to_end["macs_fraction"] <= HALF
    verdict = "not-applicable" if not applies else ("pass" if end_to_end["time_ratio"] <= 1 - FASTER_BY else "fail")
    return {"macs_fraction": end_to_end["macs_fraction"], "time_ratio": end_to_end["time_ratio"],
            "at_most_half": HALF, "faster_by_at_least": FASTER_BY, "verdict": verdict}


# -- output -------------------------------------------------------------------------------------------
def print_routes(rows: list[dict], batch_sizes: list[int]) -> None:
    print(f"{'route':>11} {'params':>10} {'multiply-adds':>14} " + " ".join(f"{f'ms @{b}':>10}" for b in batch_sizes))
    for row in rows:
        print(f"{row['route']:>11} {row['params']:>10,} {row['multiply_adds']:>14,} "
              + " ".join(f"{row['ms'][str(b)]:>10.3f}" for b in batch_sizes))


def print_summary(correlations: dict, end_to_end: dict, claim: dict) -> None:
    for size, c in correlations.items():
        print(f"batch {size:>4}: Spearman(multiply-adds, time) {c['spearman']:+.3f}  "
              f"(>= {c['at_least']}: {'pass' if c['pass'] else 'fail'})")
    e = end_to_end
    print(f"\n{e['users']} {e['split']} users in batches of {e['batch']}: routed {e['routed_s']:.3f} s "
          f"(router {e['router_s']:.3f} s, {e['router_share_of_routed']:.0%}), full model {e['full_s']:.3f} s, "
          f"time ratio {e['time_ratio']:.3f}")
    print(f"mean multiply-adds {e['macs_fraction']:.3f} of the full model's ({e['macs_fraction_with_router']:.3f} "
          f"with the router); at least {FASTER_BY:.0%} faster at half: {claim['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished `seqrec-fast search canet` run directory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,64", help="batch sizes of the per-route timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds; the median is reported")
    parser.add_argument("--batch", type=int, default=256, help="users per batch of the end-to-end inference")
    parser.add_argument("--split", default="test", choices=("valid", "test"),
                        help="whose inputs the end-to-end inference ranks (every user of the split); test is the "
                             "split whose mean multiply-adds the search reports in test_routing")
    parser.add_argument("--output", help="the JSON file (default benchmarks/results/canet_latency_<dataset>.json)")
    args = parser.parse_args()
    run_dir = args.run
    torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    model, dataset, train, result = trained_canet(run_dir)
    rows = route_costs(model, dataset, train)
    windows = split_batches(dataset, train, "valid", max(batch_sizes))[0]
    time_routes(model, rows, windows, batch_sizes, args.repeats)
    correlations = rank_correlations(rows, batch_sizes)
    end_to_end = routed_inference(model, dataset, train, args.split, args.batch, rows, args.repeats)
    claim = speedup_claim(end_to_end)
    print_routes(rows, batch_sizes)
    print_summary(correlations, end_to_end, claim)
    found = result["architecture"]
    name = Path(train.data).name
    write_result(Path(args.output) if args.output else RESULTS / f"canet_latency_{name}.json",
                 {"machine": machine(threads=args.threads), "run": str(Path(run_dir).resolve()), "data": train.data,
                  "users": dataset.n_users, "items": dataset.n_items, "max_len": train.model.max_len,
                  "batch_sizes": batch_sizes, "repeats": args.repeats, "warmup": WARMUP, "routes": rows,
                  "spearman": correlations, "end_to_end": end_to_end, "speedup_claim": claim,
                  # the search's own measurement (256 validation users, one thread), to compare with
                  "search_reported": {"scoring_ms": found["scoring_ms"],
                                      "test_multiply_adds_with_router": found["test_routing"]["multiply_adds"],
                                      "full_multiply_adds": found["full_multiply_adds"]}})


if __name__ == "__main__":
    main()
