"""CANet's study on a dataset: the routed model against the full static model, a static model of
the same multiply-adds and the static routes through its own supernet, and the two loss ablations
(collapse without the uniform loss, the guide loss's effect on easy and hard users).

    python benchmarks/bench_canet.py --data ../shared/data/ml-100k [--seeds 42,1,2] \\
        [--out runs/bench-canet] [--name NAME] [--threads 1] [--train="--epochs 50"] [--output PATH]

Per seed it runs the documented commands, CANet first (the matched static route is picked from it)

    seqrec-fast search canet --data D --out RUN/seedS/canet --seed S --json             the defaults
    seqrec-fast search canet ... --out RUN/seedS/static-128x128x8 --route 128x128x8     the full static model
    seqrec-fast search canet ... --out RUN/seedS/static-EXHXD --route EXHXD             FLOPs-matched static
    seqrec-fast search canet ... --out RUN/seedS/no-uniform --uniform-weight 0          collapse ablation
    seqrec-fast search canet ... --out RUN/seedS/no-guide --guide-weight 0              guide ablation

with --train's options added to each. A stopped bench resumes: a run with a result.json is read
back, an interrupted one continues with `--resume` and the runtime flags alone (a resumed search
keeps its own configuration), and every command is logged to RUN/bench.log. The full static route
is the largest route of CANet's space; the matched one is the static route whose multiply-adds are
closest to CANet's mean per test user (route and router, as the search reports them).

It reports, per row, mean and sd over seeds of test NDCG@10 and HR@10 and the multiply-adds per
test user as a fraction of the full model's; CANet against the curve of its supernet's static
routes (every route's validation NDCG@10 with all users on it, from the search's result.json): the
curve is the upper concave hull of (multiply-adds, NDCG@10), which sending a share of the users to
each of two routes attains, so routing beats it only if its validation NDCG@10 lies above the hull
at its own mean multiply-adds; route collapse (the top route's share of the test users, the entropy
of the route histogram and the routes that serve at least 1% of the users) with and without the
uniform loss; and, with and without the guide loss, the mean route multiply-adds of easy and hard
validation users (easy as the guide loss judges a window: the run's smallest route ranks the
target in its top guide_k, the window's other items left out; `RoutingLosses.smallest_route_hits`)
with a 95% Welch interval of hard minus easy. Claims: CANet's mean test NDCG@10 within 0.005 of
the full static model's and of the matched one's (differences paired by seed, with a 95% Student
t interval over the seeds). Writes
benchmarks/results/canet_<dataset>[_<name>].json (or --output)."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
from pathlib import Path

import numpy as np
import torch
from scipy.stats import t as student_t  # scipy comes with POT, a dependency of the package

from _results import RESULTS, Runs, machine, mean_sd, t_interval, write_result

from seqrec_fast import load
from seqrec_fast.algorithms.canet.losses import RoutingLosses
from seqrec_fast.algorithms.canet.routing import split_routes
from seqrec_fast.nas.search_run import SearchRun
from seqrec_fast.train.config import build_config

METRIC = "ndcg@10"
WITHIN = 0.005  # ml-100k's seed-to-seed spread of one run's test NDCG@10
SERVING_SHARE = 0.01  # a route "serves" users when it takes at least this share of them
CONFIDENCE = 0.95
ROWS = ("canet", "full", "matched", "no-uniform", "no-guide")


# -- the runs -----------------------------------------------------------------------------------------
def search(runs: Runs, name: str, seed: int, options: list[str]) -> Path:
    """RUN/seedS/NAME, run or finished if it is not yet."""
    out = runs.root / f"seed{seed}" / name
    runs.finish(["search", "canet"], out, seed, options)
    return out


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def static_name(route: str) -> str:
    return f"static-{route}"


def matched_route(canet: dict) -> str:
    """The route whose multiply-adds are closest to CANet's mean per test user (route and router)."""
    routed = canet["architecture"]["test_routing"]["multiply_adds"]
    return min(canet["architecture"]["routes"], key=lambda row: abs(row["multiply_adds"] - routed))["route"]


# -- one run's row ------------------------------------------------------------------------------------
def route_spread(counts: list[int]) -> dict:
    """How the users spread over the routes: the top route's share and the routes serving >= 1%."""
    shares = np.asarray(counts, dtype=float) / max(sum(counts), 1)
    return {"top_route_share": float(shares.max()), "routes_serving_1pct": int((shares >= SERVING_SHARE).sum())}


def row_of(name: str, seed: int, run_dir: Path) -> dict:
    result = read_result(run_dir)
    found, test_routing = result["architecture"], result["architecture"]["test_routing"]
    row = {"name": name, "seed": seed, "run": str(run_dir), "route": found["route"] or "routed",
           "test_ndcg@10": result["test"]["ndcg@10"], "test_hr@10": result["test"]["hr@10"],
           "valid_ndcg@10": found["valid"]["ndcg@10"], "multiply_adds": test_routing["multiply_adds"],
           "params": found["params"], "best_epoch": found["best_epoch"], "epochs_run": found["epochs_run"],
           "search_s": result["search_s"]}
    if not found["route"]:
        row.update(route_spread(test_routing["route_counts"]), histogram_entropy=test_routing["histogram_entropy"],
                   router_entropy=test_routing["router_entropy"])
    return row


def add_fraction_of_full(rows: list[dict]) -> None:
    """Each row's multiply-adds per test user as a fraction of its seed's full static model's."""
    full = {r["seed"]: r["multiply_adds"] for r in rows if r["name"] == "full"}
    for row in rows:
        row["macs_fraction_of_full"] = row["multiply_adds"] / full[row["seed"]]


# -- CANet against its static routes ------------------------------------------------------------------
def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper concave hull of (x, y) points, by x: what mixing users over two routes attains."""
    best: dict[float, float] = {}
    for x, y in points:  # of equal costs, the better
        best[x] = max(y, best.get(x, y))
    hull: list[tuple[float, float]] = []
    for x, y in sorted(best.items()):
        # drop the last point while it lies on or below the chord from the one before it to (x, y)
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (y - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (x - hull[-2][0])) >= 0:
            hull.pop()
        hull.append((x, y))
    return hull


def against_static_curve(canet_dir: Path) -> dict:
    """CANet's routed validation NDCG@10 against its supernet's static routes at its own mean
    multiply-adds per validation user (route and router)."""
    found = read_result(canet_dir)["architecture"]
    macs, routed = found["valid_routing"]["multiply_adds"], found["valid"][METRIC]
    points = [(row["multiply_adds"], row["valid"][METRIC]) for row in found["routes"]]
    hull = upper_hull(points)
    curve = float(np.interp(macs, [x for x, _ in hull], [y for _, y in hull]))
    affordable = [y for x, y in points if x <= macs]
    return {"multiply_adds": macs, "routed_valid": routed, "curve_valid": curve, "margin": routed - curve,
            "beats_curve": routed > curve, "best_static_at_most_as_costly": max(affordable) if affordable else None,
            "best_static": max(y for _, y in points)}


def curve_verdict(per_seed: dict[int, dict]) -> dict:
    margins = [c["margin"] for c in per_seed.values()]
    wins = sum(c["beats_curve"] for c in per_seed.values())
    mean = statistics.fmean(margins)
    statement = (f"routing {'beats' if mean > 0 else 'does not beat'} the static-route curve at equal multiply-adds: "
                 f"above it in {wins} of {len(margins)} seeds, mean margin {mean:+.4f} validation {METRIC}")
    return {"per_seed": per_seed, "seeds_above": wins, "mean_margin": mean, "beats_curve": mean > 0,
            "statement": statement}


# -- the guide loss: easy and hard validation users ---------------------------------------------------
@torch.no_grad()
def easy_validation_users(model, dataset, train, guide_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(users ascending, easy flags): whether the smallest route ranks each validation user's
    target in its top ``guide_k``, judged as the guide loss judges a training window."""
    judge = RoutingLosses(model, 0.0, 0.0, guide_k, train.filter_history)
    loader = dataset.eval_loader(split="valid", batch_size=train.eval_batch_size, max_len=train.model.max_len,
                                 seed=train.seed)
    users, easy = [], []
    for batch in loader:
        inputs = torch.from_numpy(np.asarray(batch["inputs"])).long()
        targets = torch.from_numpy(np.asarray(batch["targets"])).long()
        users.append(np.asarray(batch["users"], dtype=np.int64))
        easy.append(judge.smallest_route_hits(inputs, targets).numpy())
    users, easy = np.concatenate(users), np.concatenate(easy)
    order = np.argsort(users, kind="stable")
    return users[order], easy[order]


def welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """The CONFIDENCE interval of mean(a) - mean(b), unequal variances (Welch); None with fewer
    than 2 values on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference, se = a.mean() - b.mean(), float(np.sqrt(va + vb))
    if se == 0:
        return difference, difference
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(student_t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return float(difference - half), float(difference + half)


def guide_effect(run_dir: Path) -> dict:
    """Mean route multiply-adds of the easy and the hard validation users of a routed run."""
    recommender = load(run_dir, device="cpu")
    model, dataset = recommender.model.eval(), recommender.dataset
    train = build_config(recommender.run.config_path)
    result = read_result(run_dir)
    guide_k = SearchRun(run_dir).read_config()["search"]["guide_k"]
    users, easy = easy_validation_users(model, dataset, train, guide_k)
    routed_users, routes, _ = split_routes(model, dataset, train, "valid", torch.device("cpu"))
    if not np.array_equal(users, routed_users):
        raise RuntimeError(f"{run_dir}: the validation users differ between two passes over the same loader")
    route_macs = np.array([row["multiply_adds"] for row in result["architecture"]["routes"]], dtype=float)[routes]
    easy_macs, hard_macs = route_macs[easy], route_macs[~easy]
    interval = welch_interval(hard_macs, easy_macs)
    return {"guide_k": guide_k, "users": int(len(users)), "easy_users": int(easy.sum()),
            "easy_mean_multiply_adds": float(easy_macs.mean()) if len(easy_macs) else None,
            "hard_mean_multiply_adds": float(hard_macs.mean()) if len(hard_macs) else None,
            "hard_minus_easy": float(hard_macs.mean() - easy_macs.mean()) if interval else None,
            "hard_minus_easy_ci95": interval}


def guide_summary(per_seed: dict[int, dict[str, dict]]) -> dict:
    """Per seed the easy/hard split with and without the guide loss; the mean differences over seeds,
    with a Student t interval over the seeds."""
    summary = {"per_seed": per_seed}
    for name in ("canet", "no-guide"):
        differences = [g[name]["hard_minus_easy"] for g in per_seed.values() if g[name]["hard_minus_easy"] is not None]
        summary[f"{name}_mean_hard_minus_easy"] = statistics.fmean(differences) if differences else None
        summary[f"{name}_mean_hard_minus_easy_ci95"] = mean_interval(differences)
    return summary


# -- the study ----------------------------------------------------------------------------------------
def seed_runs(runs: Runs, seed: int) -> tuple[list[dict], dict[str, Path]]:
    """The five rows of one seed, CANet first: the full and matched static routes are read from it."""
    canet_dir = search(runs, "canet", seed, [])
    canet = read_result(canet_dir)
    full, matched = canet["architecture"]["routes"][-1]["route"], matched_route(canet)
    dirs = {"canet": canet_dir,
            "full": search(runs, static_name(full), seed, ["--route", full]),
            "matched": search(runs, static_name(matched), seed, ["--route", matched]),
            "no-uniform": search(runs, "no-uniform", seed, ["--uniform-weight", "0"]),
            "no-guide": search(runs, "no-guide", seed, ["--guide-weight", "0"])}
    return [row_of(name, seed, run_dir) for name, run_dir in dirs.items()], dirs


def mean_interval(values: list[float]) -> list[float] | None:
    """Student's t interval of the mean of per-seed values (None from one seed)."""
    if len(values) < 2:
        return None
    return list(t_interval(statistics.fmean(values), statistics.stdev(values), len(values), CONFIDENCE))


def closeness_claims(rows: list[dict]) -> dict:
    """CANet's mean test NDCG@10 within WITHIN of the full static model's and of the matched one's
    (differences paired by seed)."""
    by_seed = {(r["name"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    claims = {}
    for baseline in ("full", "matched"):
        differences = [by_seed["canet", s]["test_ndcg@10"] - by_seed[baseline, s]["test_ndcg@10"] for s in seeds]
        mean = statistics.fmean(differences)
        claims[f"canet_vs_{baseline}"] = {
            "routes": sorted({by_seed[baseline, s]["route"] for s in seeds}),
            "test_ndcg@10_differences": differences, "mean_difference": mean,
            "ci95": mean_interval(differences),
            f"within_{WITHIN}": abs(mean) <= WITHIN, "canet_higher": mean > 0}
    return claims


def collapse_summary(means: dict) -> dict:
    """How the users spread over the routes with the uniform loss (canet) and without (no-uniform)."""
    keys = ("top_route_share", "histogram_entropy", "routes_serving_1pct", "router_entropy")
    return {name: {key: means[name][key] for key in keys} for name in ("canet", "no-uniform")}


def print_tables(means: dict, curve: dict, collapse: dict, guide: dict, claims: dict) -> None:
    cell = lambda m, key: f"{m[key]['mean']:.4f} ± {m[key]['sd']:.4f}"  # noqa: E731
    print(f"\n{'row':<11} {'test NDCG@10':>17} {'test HR@10':>17} {'MACs / full':>17}")
    for name, m in means.items():
        print(f"{name:<11} {cell(m, 'test_ndcg@10'):>17} {cell(m, 'test_hr@10'):>17} "
              f"{cell(m, 'macs_fraction_of_full'):>17}")
    print(f"\n{curve['statement']}")
    print("\ncollapse (test users):")
    for name, c in collapse.items():
        print(f"  {name:<11} top route {c['top_route_share']['mean']:.1%}, histogram entropy "
              f"{c['histogram_entropy']['mean']:.3f} nats, {c['routes_serving_1pct']['mean']:.1f} routes serve >= 1%")
    print("\nguide (validation users; mean route multiply-adds, hard minus easy, 95% Welch interval):")
    for seed, g in guide["per_seed"].items():
        for name, e in g.items():
            interval = e["hard_minus_easy_ci95"]
            shown = "n/a" if interval is None else (f"{e['hard_minus_easy']:+,.0f} "
                                                    f"[{interval[0]:+,.0f}, {interval[1]:+,.0f}]")
            print(f"  seed {seed} {name:<9} easy {e['easy_users']}/{e['users']}: {shown}")
    for name in ("canet", "no-guide"):
        interval = guide[f"{name}_mean_hard_minus_easy_ci95"]
        if interval is not None:
            print(f"  mean over seeds {name:<9} {guide[f'{name}_mean_hard_minus_easy']:+,.0f} "
                  f"[{interval[0]:+,.0f}, {interval[1]:+,.0f}] (t interval over the seeds)")
    print(json.dumps(claims, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--out", default="runs/bench-canet")
    parser.add_argument("--name", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", default="", help="more training options for every run, quoted "
                                                    "(--train=\"--fast-dev-run\")")
    parser.add_argument("--output", help="the JSON file (default benchmarks/results/canet_<dataset>[_<name>].json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the guide analysis runs in this process
    runs = Runs(Path(args.out), ["--data", args.data, *shlex.split(args.train)], args.threads)
    rows, curves, guides = [], {}, {}
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        seed_rows, dirs = seed_runs(runs, seed)
        rows += seed_rows
        curves[seed] = against_static_curve(dirs["canet"])
        guides[seed] = {name: guide_effect(dirs[name]) for name in ("canet", "no-guide")}
        print(f"seed {seed}: " + ", ".join(f"{r['name']} {r['route']} {r['test_ndcg@10']:.4f}" for r in seed_rows),
              flush=True)
    add_fraction_of_full(rows)
    means = {name: mean_sd([r for r in rows if r["name"] == name]) for name in ROWS}
    curve, collapse, guide = curve_verdict(curves), collapse_summary(means), guide_summary(guides)
    claims = closeness_claims(rows)
    claims["canet_mean_macs_cut_vs_full"] = 1 - means["canet"]["macs_fraction_of_full"]["mean"]
    claims["routing_beats_static_curve"] = curve["beats_curve"]
    print_tables(means, curve, collapse, guide, claims)
    name = Path(args.data).name + (f"_{args.name}" if args.name else "")
    write_result(Path(args.output) if args.output else RESULTS / f"canet_{name}.json",
                 {"machine": machine(threads=args.threads), "data": args.data, "train": args.train, "rows": rows,
                  "means": means, "static_curve": curve, "collapse": collapse, "guide": guide, "claims": claims})


if __name__ == "__main__":
    main()
