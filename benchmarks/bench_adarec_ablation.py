"""AdaRec's Table 4 ablation and a beta sweep, on one trained teacher: each variant searched per
seed, the derived cell's cost read off, and (for the variants named by --retrain) the student
retrained with the same losses and tested.

    python benchmarks/bench_adarec_ablation.py --data ../shared/data/ml-100k --teacher RUN/teacher \\
        [--seeds 42,1,2] [--variants beta0,beta4,beta8,beta16,no-emb,no-hidden,no-pred,no-ce] \\
        [--retrain no-emb,no-hidden,no-pred,no-ce,beta8] [--retrain-seeds 42] [--out runs/bench-adarec-ablation] \\
        [--name NAME] [--threads 2] [-- MORE SEARCH OPTIONS]

Every variant is the documented search (beta 8, all four losses) with one change: betaB sets the
cost weight to B, no-X drops loss X from the search and from the KD retraining alike. Per
variant and seed it runs

    seqrec-fast search adarec --data D --out OUT/VARIANT/seedS --teacher TEACHER --seed S --json [change] [options]
    seqrec-fast retrain OUT/VARIANT/seedS --json        (retrained variants and seeds only)

and is resumable like bench_adarec.py. Each row: the derived cell, its normalised cost (the sum
over edges of the cost L_cost weighs, 0 for an all-zero cell, 6 x 2 for the largest op
everywhere), the derived student's parameters and multiply-adds per ranked sequence, the
supernet's validation NDCG@10 of the derived cell (inherited weights), and for retrained rows
the test metrics. Writes benchmarks/results/adarec_ablation_<dataset>[_<name>].json with the
rows, mean and sd per variant, and whether the derived cost falls as beta grows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _results import RESULTS, machine, mean_sd, write_result
from bench_adarec import METRICS, retrain, search

CHANGES = {"no-emb": ["--no-emb-loss"], "no-hidden": ["--no-hidden-loss"], "no-pred": ["--no-pred-loss"],
           "no-ce": ["--no-ce-loss"]}


def change(variant: str) -> list[str]:
    if variant.startswith("beta"):
        return ["--beta", variant[len("beta"):]]
    if variant in CHANGES:
        return CHANGES[variant]
    raise SystemExit(f"unknown variant {variant!r}: betaB (a number B) or one of {', '.join(CHANGES)}")


def derived_cost(cell: list[str], width: int, cells: int, n_items: int, length: int) -> dict:
    from seqrec_fast.algorithms.adarec.cell_ops import normalised_op_costs
    from seqrec_fast.algorithms.adarec.space import OPS
    from seqrec_fast.algorithms.adarec.student import student_cost

    per_op = normalised_op_costs(width, length)
    cost = student_cost(tuple(cell), width, cells, n_items, length)
    return {"normalised_cost": round(sum(per_op[OPS.index(op)] for op in cell), 4), "params": cost.params,
            "multiply_adds": cost.multiply_adds}


def beta_claim(means: dict) -> dict | None:
    betas = sorted((float(v[len("beta"):]), v) for v in means if v.startswith("beta"))
    if len(betas) < 2:
        return None
    costs = [means[v]["normalised_cost"]["mean"] for _, v in betas]
    return {"beta": [b for b, _ in betas], "normalised_cost": costs,
            "falls_as_beta_grows": all(later <= earlier for earlier, later in zip(costs, costs[1:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--teacher", required=True, help="a trained NextItNet or SASRec run directory")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--variants", default="beta0,beta4,beta8,beta16,no-emb,no-hidden,no-pred,no-ce")
    parser.add_argument("--retrain", default="", help="variants whose students are retrained and tested")
    parser.add_argument("--retrain-seeds", default="", help="seeds retrained (default: all of --seeds)")
    parser.add_argument("--out", default="runs/bench-adarec-ablation")
    parser.add_argument("--name", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more search options, after --")
    args = parser.parse_args()
    from seqrec_fast.train.data_source import open_dataset

    dataset = open_dataset(str(Path(args.data).resolve()))
    teacher = str(Path(args.teacher).resolve())
    seeds = [int(s) for s in args.seeds.split(",")]
    retrained = set(filter(None, args.retrain.split(",")))
    retrain_seeds = {int(s) for s in args.retrain_seeds.split(",")} if args.retrain_seeds else set(seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "bench.log"
    rows = []
    for seed in seeds:
        for variant in args.variants.split(","):
            run = out / variant / f"seed{seed}"
            found = search(args.data, run, teacher, seed, [*change(variant), *args.extra], log, args.threads)
            spec = json.loads((run / "spec.json").read_text())
            cell = found["architecture"]["cell"]
            row = {"variant": variant, "seed": seed, "cell": cell,
                   **derived_cost(cell, found["architecture"]["width"], found["architecture"]["cells"],
                                  dataset.n_items, spec["model"]["max_len"]),
                   "supernet_valid_ndcg@10": found["fitness"], "search_s": found["search_s"]}
            if variant in retrained and seed in retrain_seeds:
                result = retrain(run, log)
                row.update({f"test_{m}": result["test"][m] for m in METRICS},
                           **{"valid_ndcg@10": result["valid"]["ndcg@10"], "retrain_s": result["elapsed_s"]})
            rows.append(row)
            print(f"{variant} seed {seed}: cost {row['normalised_cost']} cell {','.join(cell)}", flush=True)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    means = {v: mean_sd([r for r in rows if r["variant"] == v]) for v in variants}
    report = {"machine": machine(), "data": args.data, "teacher": teacher, "extra": args.extra, "rows": rows,
              "means": means, "beta": beta_claim(means)}
    print(f"\n{'variant':<10} {'cost':>14} {'supernet NDCG@10':>18} {'test NDCG@10':>18}")
    for v, m in means.items():
        cell = lambda key: f"{m[key]['mean']:.4f} ± {m[key]['sd']:.4f}" if key in m else "-"
        print(f"{v:<10} {cell('normalised_cost'):>14} {cell('supernet_valid_ndcg@10'):>18} {cell('test_ndcg@10'):>18}")
    print(json.dumps(report["beta"]))
    name = Path(args.data).name + (f"_{args.name}" if args.name else "")
    write_result(RESULTS / f"adarec_ablation_{name}.json", report)


if __name__ == "__main__":
    main()
