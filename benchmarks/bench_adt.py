"""ADT's ablation (paper Table 3) on one dataset: the backbone, the backbone retrained with the
loss weights ADT searched, and the backbone with twice the layers; test NDCG@10 and HR@10 as mean
and std over seeds, with the search and retrain wall times.

    python benchmarks/bench_adt.py --data ../shared/data/ml-100k --backbone sasrec --seeds 0,1,2 \\
        --out /tmp/adt_runs [--threads 1] [--search "--population 20 --rounds 5"]

Every run is one of the documented commands (`seqrec-fast train`, `search adt`, `retrain`, each
with --json) in its own process, under the same protocol as benchmarks/bench_ml100k.py (max_len
50, hidden 64, 2 layers, 2 heads, batch 256, lr 1e-3, early stopping on validation NDCG@10; CE,
STOSA its own loss) except that the user's history is filtered, the library's default, and that
every variant trains on disjoint windows (as ADT does; SASRec's own default is strided). Runs that
finished are read back when the script is started again with the same --out, interrupted ones
resume, so the script can be stopped at any point. Prints a table and writes
benchmarks/results/adt_<dataset>_<backbone>.json."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

from _results import CLI, RESULTS, machine, run_json, write_result

# Disjoint windows for every variant: the ADT search and retrain use them (its objectives read
# every position), so the plain backbones must too for the comparison to isolate ADT.
PROTOCOL = ["--max-len", "50", "--hidden-size", "64", "--num-heads", "2", "--batch-size", "256", "--lr", "1e-3",
            "--window", "sliding"]
VARIANTS = ("backbone", "adt", "twice_layers")
METRICS = ("ndcg@10", "hr@10")


class Ablation:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.root = Path(args.out)
        self.root.mkdir(parents=True, exist_ok=True)
        loss = [] if args.backbone == "stosa" else ["--loss", "ce"]
        self.common = ["--data", args.data, *PROTOCOL, *loss, "--threads", str(args.threads), "--no-progress",
                       "--json", *shlex.split(args.train)]

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def train(self, name: str, seed: int, layers: int) -> dict:
        run_dir = self.root / name
        if (run_dir / "result.json").is_file():
            return json.loads((run_dir / "result.json").read_text())
        resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
        command = [CLI, "train", "--model", self.args.backbone, "--out", str(run_dir), *self.common,
                   "--num-layers", str(layers), "--seed", str(seed), *resume]
        return run_json(command, self.log(name))

    def adt(self, name: str, seed: int) -> tuple[dict, dict]:
        run_dir = self.root / name
        if (run_dir / "result.json").is_file():
            searched = json.loads((run_dir / "result.json").read_text())
        elif (run_dir / "config.yaml").is_file():  # interrupted: the search's own config resumes it
            searched = run_json([CLI, "search", "adt", "--out", str(run_dir), "--resume", "--json"], self.log(name))
        else:
            command = [CLI, "search", "adt", "--backbone", self.args.backbone, "--out", str(run_dir),
                       *self.common, "--num-layers", "2", "--seed", str(seed), *shlex.split(self.args.search)]
            searched = run_json(command, self.log(name))
        retrained_file = run_dir / "retrain" / "result.json"
        if retrained_file.is_file():
            retrained = json.loads(retrained_file.read_text())
        else:
            retrained = run_json([CLI, "retrain", str(run_dir), "--json"], self.log(name))
        return searched, retrained

    def run(self) -> dict:
        runs = []
        for seed in self.args.seeds:
            for variant in VARIANTS:
                name = f"{variant}_seed{seed}"
                started = time.perf_counter()
                print(f"{name} ...", file=sys.stderr, flush=True)
                row = {"variant": variant, "seed": seed}
                if variant == "adt":
                    searched, retrained = self.adt(name, seed)
                    row |= {"weights": searched["architecture"], "search_valid": searched["fitness"],
                            "evaluations": searched["evaluations"], "warmup_s": searched["warmup_s"],
                            "search_s": searched["search_s"], "retrain_s": retrained["elapsed_s"]}
                    result = retrained
                else:
                    result = self.train(name, seed, layers=2 if variant == "backbone" else 4)
                    row["train_s"] = result["elapsed_s"]
                row |= {"valid": {m: result["valid"][m] for m in METRICS}, "test": {m: result["test"][m] for m in METRICS},
                        "best_epoch": result["best_epoch"], "time_to_best_s": result["time_to_best_s"]}
                runs.append(row)
                print(f"{name}: test ndcg@10 {row['test']['ndcg@10']:.4f} hr@10 {row['test']['hr@10']:.4f} "
                      f"({time.perf_counter() - started:.0f} s this call)", file=sys.stderr, flush=True)
                self.save(runs, final=False)
        return self.save(runs, final=True)

    def save(self, runs: list[dict], final: bool) -> dict:
        args = self.args
        payload = {
            "benchmark": "ADT ablation (paper Table 3)",
            "dataset": Path(args.data).name, "backbone": args.backbone, "seeds": args.seeds,
            "protocol": "leave-one-out, full ranking, history filtered",
            "complete": final,
            "summary": summarise(runs),
            "runs": runs,
            "commands": {"train": f"seqrec-fast train --model {args.backbone} {shlex.join(self.common)} "
                                  "--num-layers 2|4 --seed S",
                         "search": f"seqrec-fast search adt --backbone {args.backbone} {shlex.join(self.common)} "
                                   f"--num-layers 2 --seed S {args.search}".rstrip(),
                         "retrain": "seqrec-fast retrain RUN_DIR --json",
                         "this script": shlex.join([sys.executable, *sys.argv])},
            "machine": machine(threads=args.threads, note="2-core machine shared with other jobs"),
        }
        if args.note:
            payload["note"] = args.note
        write_result(Path(args.results) / f"adt_{payload['dataset']}_{args.backbone}.json", payload)
        return payload


def summarise(runs: list[dict]) -> dict:
    summary = {}
    for variant in VARIANTS:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        entry = {"n": len(rows)}
        for metric in METRICS:
            values = [r["test"][metric] for r in rows]
            entry[metric] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        for key in ("train_s", "warmup_s", "search_s", "retrain_s"):
            if key in rows[0]:
                entry[key] = round(statistics.fmean(r[key] for r in rows), 1)
        summary[variant] = entry
    return summary


def print_table(payload: dict) -> None:
    print(f"\n{payload['backbone']} on {payload['dataset']} ({payload['protocol']}), seeds {payload['seeds']}")
    print(f"{'variant':<14}{'n':>3}{'test NDCG@10':>20}{'test HR@10':>20}{'wall s (mean)':>36}")
    for variant, entry in payload["summary"].items():
        times = ", ".join(f"{k[:-2]} {entry[k]:.0f}" for k in ("train_s", "warmup_s", "search_s", "retrain_s")
                          if k in entry)
        cells = [f"{entry[m]['mean']:.4f} ± {entry[m]['std']:.4f}" for m in METRICS]
        print(f"{variant:<14}{entry['n']:>3}{cells[0]:>20}{cells[1]:>20}{times:>36}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--backbone", default="sasrec", choices=("sasrec", "bert4rec", "stosa"))
    parser.add_argument("--seeds", default="0,1,2", type=lambda text: [int(s) for s in text.split(",")])
    parser.add_argument("--out", required=True, help="run directories (reused: finished runs are read back)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(RESULTS), help="folder of the JSON result")
    parser.add_argument("--train", default="", help="more training options for every run, quoted")
    parser.add_argument("--note", default="", help="kept in the JSON result (how the runs went)")
    parser.add_argument("--search", default="", help="ADT search options, quoted (default: the paper's budget)")
    print_table(Ablation(parser.parse_args()).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
