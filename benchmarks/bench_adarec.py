"""AdaRec's Table 2 on a dataset: for each teacher and seed, the teacher, a KD student of the same
size with a fixed cell, and the AdaRec student, under full ranking with the history filtered.

    python benchmarks/bench_adarec.py --data ../shared/data/ml-100k [--teachers nextitnet,sasrec] \\
        [--seeds 42,1,2] [--out runs/bench-adarec] [--name NAME] [--threads 2] [-- MORE SEARCH OPTIONS]

Per teacher and seed it runs the documented commands

    seqrec-fast search adarec --data D --out RUN/adarec --teacher T --seed S --json [options]
    seqrec-fast retrain RUN/adarec --json
    seqrec-fast search adarec --data D --out RUN/fixed --teacher RUN/adarec/teacher \\
        --architecture FIXED_CELL --seed S --json [options]
    seqrec-fast retrain RUN/fixed --json

so the fixed student learns from the very teacher AdaRec's search trained. A run directory that
holds a finished step is read, an interrupted one resumed: a stopped bench goes on where it was.

Each row: test NDCG@10, HR@10 and MRR@5 (and validation NDCG@10), parameters with and without
the item embeddings, multiply-adds to rank every item after one sequence of max_len items, the
CPU seconds to score all the dataset's users (one thread, median of 3), and search and retrain
wall times. Writes benchmarks/results/adarec_<dataset>[_<name>].json with every row, the mean and
standard deviation over seeds, and whether each of the paper's claims holds."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _results import CLI, RESULTS, machine, mean_sd, run_json, write_result

# A causal TCN-like cell: dilations grow along the DAG, every edge a kernel-3 convolution.
FIXED_CELL = "conv3_d1,conv3_d2,conv3_d2,conv3_d4,conv3_d4,conv3_d4"
METRICS = ("ndcg@10", "hr@10", "mrr@5")
SCORING_REPEATS = 3


def finished(run: Path) -> bool:
    return (run / "result.json").is_file()


def search(data: str, run: Path, teacher: str, seed: int, extra: list[str], log: Path, threads: int = 2) -> dict:
    if finished(run):
        return json.loads((run / "result.json").read_text())
    command = [CLI, "search", "adarec", "--data", data, "--out", str(run), "--teacher", teacher, "--seed", str(seed),
               "--threads", str(threads), "--no-progress", "--json", *extra]
    if (run / "config.yaml").is_file():
        command.append("--resume")
    return run_json(command, log)


def retrain(run: Path, log: Path) -> dict:
    if finished(run / "retrain"):
        return json.loads((run / "retrain" / "result.json").read_text())
    return run_json([CLI, "retrain", str(run), "--json"], log)


def model_costs(run_dir: Path, dataset) -> dict:
    """Parameters, multiply-adds per ranked sequence, and the seconds to score every user."""
    import torch

    from seqrec_fast import load, ops
    from seqrec_fast.nas.cost import counted

    model = load(run_dir, device="cpu").model.eval()
    embeddings = sum(m.weight.numel() for name, m in model.named_modules()
                     if isinstance(m, torch.nn.Embedding) and name.split(".")[-1] in ("items", "output_items"))
    params = sum(p.numel() for p in model.parameters())

    one = torch.randint(1, dataset.n_items + 1, (1, model.config.max_len))
    with ops.reference_ops():  # torch's FLOP counter sees aten ops
        macs = counted(model, one, method="predict").multiply_adds
    batches = [torch.from_numpy(np.asarray(b["inputs"])).long()
               for b in dataset.eval_loader(split="test", batch_size=512, max_len=model.config.max_len)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seconds = []
    with torch.no_grad():
        for _ in range(SCORING_REPEATS):
            started = time.perf_counter()
            for inputs in batches:
                model.predict(inputs)
            seconds.append(time.perf_counter() - started)
    torch.set_num_threads(threads)
    return {"params": params, "params_without_embeddings": params - embeddings, "multiply_adds": macs,
            "score_all_users_s": round(statistics.median(seconds), 4)}


def row(kind: str, result: dict, costs: dict, **times) -> dict:
    return {"kind": kind, **{f"test_{m}": result["test"][m] for m in METRICS},
            "valid_ndcg@10": result["valid"]["ndcg@10"], "best_epoch": result.get("best_epoch"), **costs, **times}


def claims(means: dict) -> dict:
    teacher, fixed, found = means["teacher"], means["fixed"], means["adarec"]
    ratio = found["test_ndcg@10"]["mean"] / teacher["test_ndcg@10"]["mean"]
    speedup = teacher["score_all_users_s"]["mean"] / found["score_all_users_s"]["mean"]
    return {
        "student_keeps_90pct_of_teacher_ndcg": {"ratio": round(ratio, 4), "holds": ratio >= 0.9},
        "adarec_at_least_fixed_kd_student": {
            "adarec": found["test_ndcg@10"]["mean"], "fixed": fixed["test_ndcg@10"]["mean"],
            "holds": found["test_ndcg@10"]["mean"] >= fixed["test_ndcg@10"]["mean"]},
        "student_scores_2x_faster": {"speedup": round(speedup, 2), "holds": speedup >= 2.0},
    }


def print_table(teacher: str, means: dict) -> None:
    print(f"\nteacher {teacher}")
    print(f"{'model':<8} {'NDCG@10':>16} {'HR@10':>16} {'MRR@5':>16} {'params':>10} {'no emb':>9} "
          f"{'MACs/seq':>12} {'score s':>8}")
    for kind, m in means.items():
        cell = lambda key: f"{m[key]['mean']:.4f} ± {m[key]['sd']:.4f}"
        print(f"{kind:<8} {cell('test_ndcg@10'):>16} {cell('test_hr@10'):>16} {cell('test_mrr@5'):>16} "
              f"{m['params']['mean']:>10.0f} {m['params_without_embeddings']['mean']:>9.0f} "
              f"{m['multiply_adds']['mean']:>12.0f} {m['score_all_users_s']['mean']:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--teachers", default="nextitnet,sasrec")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--out", default="runs/bench-adarec")
    parser.add_argument("--name", default="")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads of each search and retraining (1 lets two benches share 2 cores)")
    parser.add_argument("extra", nargs="*", help="more search options, after --")
    args = parser.parse_args()
    from seqrec_fast.train.data_source import open_dataset

    dataset = open_dataset(str(Path(args.data).resolve()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "bench.log"
    report = {"machine": machine(), "data": args.data, "fixed_cell": FIXED_CELL, "extra": args.extra,
              "teachers": {}}
    for teacher in args.teachers.split(","):
        rows = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            base = out / teacher / f"seed{seed}"
            found = search(args.data, base / "adarec", teacher, seed, args.extra, log, args.threads)
            found_retrain = retrain(base / "adarec", log)
            search(args.data, base / "fixed", str((base / "adarec" / "teacher").resolve()), seed,
                           ["--architecture", FIXED_CELL, *args.extra], log, args.threads)
            fixed_retrain = retrain(base / "fixed", log)
            teacher_result = json.loads((base / "adarec" / "teacher" / "result.json").read_text())
            rows += [
                {"seed": seed, **row("teacher", teacher_result, model_costs(base / "adarec" / "teacher", dataset),
                                     train_s=teacher_result["elapsed_s"])},
                {"seed": seed, **row("fixed", fixed_retrain, model_costs(base / "fixed", dataset),
                                     retrain_s=fixed_retrain["elapsed_s"]), "cell": FIXED_CELL.split(",")},
                {"seed": seed, **row("adarec", found_retrain, model_costs(base / "adarec", dataset),
                                     search_s=found["search_s"], retrain_s=found_retrain["elapsed_s"]),
                 "cell": found["architecture"]["cell"]},
            ]
            print(f"{teacher} seed {seed}: cell {found['architecture']['cell']}", file=sys.stderr)
        means = {kind: mean_sd([r for r in rows if r["kind"] == kind]) for kind in ("teacher", "fixed", "adarec")}
        report["teachers"][teacher] = {"rows": rows, "means": means, "claims": claims(means)}
        print_table(teacher, means)
        print(json.dumps(report["teachers"][teacher]["claims"], indent=2))
    name = Path(args.data).name + (f"_{args.name}" if args.name else "")
    write_result(RESULTS / f"adarec_{name}.json", report)


if __name__ == "__main__":
    main()
