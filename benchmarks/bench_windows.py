"""Training windows for SASRec on ml-100k under RecBole's protocol: disjoint windows ("sliding")
against overlapping ones ("stride K", SASRec's default with K = 5: a window every K items,
targets on its last K positions), over seeds.

    python benchmarks/bench_windows.py --data ../shared/data/ml-100k --out /tmp/windows \\
        [--variants "sliding;stride 5;stride 5, 256 windows"] [--seeds 42,1,2] [--threads 1]

Every run is the documented command of benchmarks/bench_ml100k.py (`seqrec-fast train --model
sasrec ... --no-filter-history --json`) plus the variant's options: a variant is "sliding",
"stride K", "stride K, N windows" (N windows of K targets per batch: --batch-size N*K) or any
train options ("--window sliding --batch-size 32"). ml-100k in disjoint windows of 50 is 10
batches of 256 sequences per epoch; with stride K, --batch-size counts targets, so an epoch has
about 390 batches of 256 // K windows whatever K is. Finished runs are read back when the script
is started again with the same --out, so it can be stopped and restarted. Prints a table (valid
and test NDCG@10, mean and std over seeds) and writes
benchmarks/results/ml100k_sasrec_windows.json.
Model selection is on validation only; the test column is what that selection gives."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

from _results import CLI, RESULTS, machine, run_json, write_result
from bench_ml100k import PROTOCOL


def variant_options(variant: str) -> list[str]:
    if variant == "sliding":
        return ["--window", variant]
    if match := re.fullmatch(r"stride (\d+)(?:, (\d+) windows)?", variant):
        stride, windows = match.groups()
        batch = ["--batch-size", str(int(windows) * int(stride))] if windows else []
        return ["--window", "stride", "--stride", stride, *batch]
    return shlex.split(variant)


def slug(variant: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def run(variant: str, seed: int, args: argparse.Namespace) -> dict:
    run_dir = Path(args.out) / f"{slug(variant)}_seed{seed}"
    if (run_dir / "result.json").is_file():
        result = json.loads((run_dir / "result.json").read_text())
    else:
        if (run_dir / "checkpoints").is_dir():  # interrupted: it resumes with its own config
            command = [CLI, "train", "--out", str(run_dir), "--resume", "--json"]
        else:
            command = [CLI, "train", "--model", "sasrec", "--data", args.data, "--out", str(run_dir), *PROTOCOL,
                       "--loss", "ce", "--no-progress", "--json", "--threads", str(args.threads), "--seed", str(seed),
                       *variant_options(variant)]
        result = run_json(command, Path(args.out) / f"{slug(variant)}_seed{seed}.log")
    return {"variant": variant, "seed": seed, "windows": windows_of(run_dir),
            "valid_ndcg@10": result["valid"]["ndcg@10"], "test_ndcg@10": result["test"]["ndcg@10"],
            "test_hr@10": result["test"]["hr@10"], "best_epoch": result["best_epoch"],
            "time_to_best_s": result["time_to_best_s"], "train_samples_per_s": result["train_samples_per_s"]}


def windows_of(run_dir: Path) -> str:
    """The windows a run trained on, from its resolved config."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return f"stride {config['stride']}" if config["window"] == "stride" else config["window"]


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="run directories (reused: finished runs are read back)")
    parser.add_argument("--variants", default="sliding;stride 5;stride 5, 256 windows", help="';'-separated")
    parser.add_argument("--seeds", default="42,1,2", type=lambda text: [int(s) for s in text.split(",")])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    runs, summary = [], {}
    for variant in variants:
        rows = [run(variant, seed, args) for seed in args.seeds]
        runs += rows
        summary[variant] = {key: mean_std([r[key] for r in rows])
                            for key in ("valid_ndcg@10", "test_ndcg@10", "test_hr@10", "time_to_best_s")}
        summary[variant]["windows"] = sorted({r["windows"] for r in rows})
        s = summary[variant]
        print(f"{variant:<28} valid ndcg@10 {s['valid_ndcg@10']['mean']:.4f} ± {s['valid_ndcg@10']['std']:.4f}  "
              f"test ndcg@10 {s['test_ndcg@10']['mean']:.4f} ± {s['test_ndcg@10']['std']:.4f}  "
              f"hr@10 {s['test_hr@10']['mean']:.4f}  {s['time_to_best_s']['mean']:6.1f} s to best", flush=True)
    command = [CLI, "train", "--model", "sasrec", "--data", args.data, "--out", "RUN_DIR", *PROTOCOL, "--loss", "ce",
               "--no-progress", "--json", "--threads", str(args.threads), "--seed", "S", "VARIANT OPTIONS"]
    write_result(RESULTS / "ml100k_sasrec_windows.json", {
        "benchmark": "training windows, SASRec on ml-100k (RecBole's protocol)",
        "protocol": "leave-one-out, full ranking, history kept; max_len 50, d 64, 2 layers, 2 heads, CE, batch 256, "
                    "lr 1e-3, early stopping (patience 10) on valid NDCG@10",
        "seeds": args.seeds, "summary": summary, "runs": runs,
        "commands": {"train": shlex.join(command), "this script": shlex.join([sys.executable, *sys.argv])},
        "note": args.note, "machine": machine(note="CPU shared with other jobs"),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
