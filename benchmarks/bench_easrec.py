"""EASRec's study on a dataset: the searches over lambda, the full model, the gate ablation and
every architecture trained from scratch, each row from the documented commands.

    python benchmarks/bench_easrec.py --data ../shared/data/ml-100k [--seeds 42,1,2] \\
        [--lambdas 0,0.01,0.1,1] [--gates one,none [--gate-seeds 42]] [--all-architectures SEED] \\
        [--out runs/bench-easrec] [--name NAME] [--threads 1] [--train="--epochs 30"] [-- MORE SEARCH OPTIONS]

Per seed it runs

    seqrec-fast search easrec --data D --out RUN/full --architecture 1x4 --seed S --json [protocol]
    seqrec-fast search easrec --data D --out RUN/lambdaL --flops-lambda L --seed S --json [protocol]
    seqrec-fast search easrec --data D --out RUN/gates-G --gates G --seed S --json [protocol]  (--gates)
    seqrec-fast retrain RUN/... --json                                                    (each of them)

and with --all-architectures SEED every candidate KEEPxDEPTH of the space from scratch at that
seed. The protocol is the issue's: history filtered, max_len 200, hidden 64, inner 256. A stopped
bench resumes: finished runs are read back, an interrupted one continues. Each row: the
architecture, its multiply-adds, parameters and scoring time (the search's own measurement),
validation and test NDCG@10 / HR@10, the search's and the retraining's wall time. Claims: the
derived multiply-adds do not increase with lambda (means over seeds); the lambda 0.1 model's test
NDCG@10 against the full model's (within 0.005?), and if lambda 0.1 keeps the full model, the
smallest lambda whose model has at most half its multiply-adds; with --gates, the ablation; with
--all-architectures, where the search's choices lie among the candidates trained alone (their
validation rank, whether any candidate is both cheaper and better) and the search's wall time
against training them all. Writes benchmarks/results/easrec_<dataset>[_<name>].json."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
from pathlib import Path

from _results import RESULTS, Runs, machine, mean_sd, write_result

PROTOCOL = ["--max-len", "200", "--hidden-size", "64", "--inner-size", "256"]
FULL = "1x4"
KEEP = (1.0, 0.5, 0.25)
LAYERS = 4
LAMBDA_FOR_CLAIM = 0.1
WITHIN = 0.005


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.root = Path(args.out)
        self.runs = Runs(self.root, ["--data", args.data, *PROTOCOL, *shlex.split(args.train), *args.extra],
                         args.threads)

    def run(self, name: str, seed: int, options: list[str]) -> dict:
        """The row of search + retrain NAME at SEED, running or finishing what is missing."""
        out = self.root / f"seed{seed}" / name
        self.runs.finish(["search", "easrec"], out, seed, options)
        self.runs.retrain(out)
        found = json.loads((out / "result.json").read_text())
        retrained = json.loads((out / "retrain" / "result.json").read_text())
        architecture = found["architecture"]
        return {"name": name, "seed": seed, "architecture": architecture["architecture"],
                "multiply_adds": architecture["multiply_adds"], "params": architecture["params"],
                "scoring_ms": architecture["scoring_ms"], "gates": architecture["gates"],
                "test_ndcg@10": retrained["test"]["ndcg@10"], "test_hr@10": retrained["test"]["hr@10"],
                "valid_ndcg@10": retrained["valid"]["ndcg@10"], "best_epoch": retrained["best_epoch"],
                "search_s": found.get("search_s", 0.0), "retrain_s": retrained["elapsed_s"],
                "searched": bool(found.get("evaluations"))}


def seed_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def lambda_name(value: float) -> str:
    return f"lambda{value:g}"


def by(rows: list[dict], name: str) -> list[dict]:
    return [r for r in rows if r["name"] == name]


def lambda_claims(rows: list[dict], lambdas: list[float]) -> dict:
    full = mean_sd(by(rows, "full"))
    macs = {value: statistics.fmean(r["multiply_adds"] for r in by(rows, lambda_name(value))) for value in lambdas}
    ordered = [macs[value] for value in sorted(lambdas)]
    claims = {"mean_multiply_adds_by_lambda": {f"{value:g}": m for value, m in macs.items()},
              "multiply_adds_nonincreasing_in_lambda": all(b <= a for a, b in zip(ordered, ordered[1:]))}
    if LAMBDA_FOR_CLAIM in lambdas:
        chosen = by(rows, lambda_name(LAMBDA_FOR_CLAIM))
        seeds = {r["seed"]: r for r in by(rows, "full")}
        differences = [r["test_ndcg@10"] - seeds[r["seed"]]["test_ndcg@10"] for r in chosen if r["seed"] in seeds]
        claims["lambda_0.1"] = {
            "architectures": [r["architecture"] for r in chosen],
            "test_ndcg@10_minus_full": differences,
            "mean_difference": statistics.fmean(differences) if differences else None,
            "within_0.005": bool(differences) and abs(statistics.fmean(differences)) <= WITHIN,
            "macs_ratio": macs[LAMBDA_FOR_CLAIM] / full["multiply_adds"]["mean"]}
        if all(r["architecture"] == FULL for r in chosen):
            half = [v for v in sorted(lambdas) if macs[v] <= full["multiply_adds"]["mean"] / 2]
            if half:
                group = mean_sd(by(rows, lambda_name(half[0])))
                claims["smallest_lambda_at_half_the_multiply_adds"] = {
                    "lambda": half[0], "test_ndcg@10": group["test_ndcg@10"],
                    "minus_full": group["test_ndcg@10"]["mean"] - full["test_ndcg@10"]["mean"]}
            else:
                claims["smallest_lambda_at_half_the_multiply_adds"] = None
    return claims


def architecture_claims(candidates: list[dict], searched: list[dict]) -> dict:
    """Where each search of the same seed lies among the candidates trained from scratch."""
    ranked = sorted(candidates, key=lambda r: -r["valid_ndcg@10"])
    placed = []
    for row in searched:
        alone = next(c for c in candidates if c["architecture"] == row["architecture"])
        placed.append({"search": row["name"], "architecture": row["architecture"],
                       "validation_rank_alone": ranked.index(alone) + 1,
                       "cheaper_and_better_alone": [c["architecture"] for c in candidates
                                                    if c["multiply_adds"] < alone["multiply_adds"]
                                                    and c["valid_ndcg@10"] > alone["valid_ndcg@10"]],
                       "search_s": row["search_s"]})
    return {"by_validation": [(c["architecture"], c["valid_ndcg@10"], c["multiply_adds"]) for c in ranked],
            "searches": placed, "training_all_s": sum(c["retrain_s"] for c in candidates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--lambdas", default="0,0.01,0.1,1")
    parser.add_argument("--gates", default="", help="gate kinds of the ablation besides the default two-layer one")
    parser.add_argument("--gate-seeds", default=None, help="the seeds of the gate ablation (default: --seeds)")
    parser.add_argument("--all-architectures", type=int, default=None, metavar="SEED",
                        help="train every candidate from scratch at this seed")
    parser.add_argument("--out", default="runs/bench-easrec")
    parser.add_argument("--name", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", default="", help="more training options for every run, quoted")
    parser.add_argument("extra", nargs="*", help="more EASRec search options, after --")
    args = parser.parse_args()
    bench = Bench(args)
    seeds = seed_list(args.seeds)
    lambdas = [float(v) for v in args.lambdas.split(",") if v]
    gates = [g for g in args.gates.split(",") if g]
    gate_seeds = seeds if args.gate_seeds is None else seed_list(args.gate_seeds)
    rows = []
    for seed in seeds:
        rows.append(bench.run("full", seed, ["--architecture", FULL]))
        rows += [bench.run(lambda_name(v), seed, ["--flops-lambda", f"{v:g}"]) for v in lambdas]
        rows += [bench.run(f"gates-{g}", seed, ["--gates", g, "--flops-lambda", f"{LAMBDA_FOR_CLAIM:g}"])
                 for g in gates if seed in gate_seeds]
        print(f"seed {seed}: " + ", ".join(f"{r['name']} {r['architecture']} {r['test_ndcg@10']:.4f}"
                                           for r in rows if r["seed"] == seed), flush=True)
    candidates = []
    if args.all_architectures is not None:
        seed = args.all_architectures
        architectures = [f"{keep:g}x{depth}" for keep in KEEP for depth in range(1, LAYERS + 1)]
        # The full candidate from scratch is the "full" row of that seed: one run, not two.
        candidates = [bench.run("full" if a == FULL else f"scratch-{a}", seed, ["--architecture", a])
                      for a in architectures]
    names = dict.fromkeys(r["name"] for r in rows)
    means = {name: mean_sd(by(rows, name)) for name in names}
    claims = lambda_claims(rows, lambdas) if seeds and lambdas else {}
    if candidates:
        claims["all_architectures"] = architecture_claims(
            candidates, [r for r in rows if r["seed"] == args.all_architectures and r["searched"]])
    print(f"\n{'run':<13} {'architecture':<12} {'test NDCG@10':>18} {'MACs':>12} {'scoring ms':>10}")
    for name, m in means.items():
        architectures = ",".join(dict.fromkeys(r["architecture"] for r in by(rows, name)))
        print(f"{name:<13} {architectures:<12} {m['test_ndcg@10']['mean']:>9.4f} ± {m['test_ndcg@10']['sd']:.4f} "
              f"{m['multiply_adds']['mean']:>12,.0f} {m['scoring_ms']['mean']:>10.1f}")
    print(json.dumps(claims, indent=2))
    name = Path(args.data).name + (f"_{args.name}" if args.name else "")
    write_result(RESULTS / f"easrec_{name}.json", {"machine": machine(threads=args.threads), "data": args.data,
                                                   "protocol": PROTOCOL, "train": args.train, "extra": args.extra,
                                                   "rows": rows, "candidates": candidates, "means": means,
                                                   "claims": claims})


if __name__ == "__main__":
    main()
