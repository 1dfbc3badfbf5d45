"""Our rows for the ml-100k comparison with RecBole (benchmarks/recbole_baseline.py has theirs).

RecBole's protocol for sequential models: leave-one-out, full ranking over all items with the
user's history NOT filtered, max_len 50, hidden 64, batch 256 targets, lr 1e-3, early stopping
on validation NDCG@10; every other setting at the backbone's defaults (each backbone's module
says what they are and why). Each run is the documented command

    seqrec-fast train --model M --data DIR --out RUN --max-len 50 --hidden-size 64 \\
        --batch-size 256 --lr 1e-3 --no-filter-history --json

once per seed, with --threads 1 as RecBole's rows; the wall time to the best validation epoch
counts from the start of the command.

    python benchmarks/bench_ml100k.py --data ../shared/data/ml-100k [--models sasrec,gru4rec] \\
        [--seeds 42,1,2,3,4] [--jobs 2] [--out DIR] [--name NAME -- MORE TRAIN OPTIONS] [--against NAME]

With --out, each finished run leaves its row in its run directory (bench_row.json), so a bench
that is stopped resumes where it was and a set can be filled a few seeds at a time; a run
directory without a row is an unfinished run and is trained again from the start. --jobs runs
that many seeds at once: their seconds are then those of a shared machine.

Writes benchmarks/results/ml100k_<model>[_<name>].json: every run's row (command, resolved
config, metrics, times), the mean and standard deviation over seeds, the users' test NDCG@10 and
HR@10 averaged over seeds (so that another set can be compared user by user), RecBole's finished
rows for the model side by side (recbole_<model>_ml-100k*.json), and with --against a paired
bootstrap confidence interval over users for the difference from that set."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import CLI, RESULTS, machine, write_result

PROTOCOL = ["--max-len", "50", "--hidden-size", "64", "--batch-size", "256", "--lr", "1e-3", "--no-filter-history"]
MODELS = ("sasrec", "bert4rec", "nextitnet", "gru4rec", "stosa")
METRICS = ("ndcg@10", "hr@10")
RECBOLE_NAMES = {"sasrec": "sasrec", "bert4rec": "bert4rec", "nextitnet": "nextitnet", "gru4rec": "gru4rec"}
BOOTSTRAP_SAMPLES = 10_000
ROW = "bench_row.json"


def run_once(model: str, seed: int, data: str, run_dir: Path, nice: int, threads: int, extra: list[str]) -> dict:
    if (run_dir / ROW).exists():
        return json.loads((run_dir / ROW).read_text())
    command = [CLI, "train", "--model", model, "--data", data, "--out", str(run_dir), *PROTOCOL,
               "--seed", str(seed), "--threads", str(threads), "--no-progress", "--json", *extra]
    if run_dir.exists():
        command.append("--overwrite")
    if nice:
        command = ["nice", "-n", str(nice), *command]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{model} seed {seed} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    row = run_row(result, command, wall, run_dir)
    write_result(run_dir / ROW, row)
    return row


def run_row(result: dict, command: list[str], wall: float, run_dir: Path) -> dict:
    import yaml

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in records]
    return {
        "seed": yaml.safe_load((run_dir / "config.yaml").read_text())["seed"],
        "valid": result["valid"], "test": result["test"], "loss": result["loss"], "protocol": result["protocol"],
        "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"], "stopped": result["stopped"],
        "time_to_best_s": result["time_to_best_s"], "total_s": round(wall, 1),
        # Epoch 1 includes the setup (dataset, JIT build); the later epochs' mean is the pace.
        "seconds_per_epoch": round(float(np.mean(np.diff(elapsed))), 2) if len(elapsed) > 1 else elapsed[0],
        "train_targets_per_s": result["train_samples_per_s"],
        "command": shlex.join(command),
        "resolved_config": yaml.safe_load((run_dir / "config.yaml").read_text()),
    }


def per_user_test_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    from seqrec_fast.train.metrics import RankCounts, per_user_metrics

    saved = np.load(run_dir / "test_ranks.npz")
    values = per_user_metrics(RankCounts(saved["greater"], saved["ties"], saved["n_negatives"]))
    return {metric: values[metric] for metric in METRICS}


def mean_sd(values) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(values.mean()), 5), "sd": round(float(values.std(ddof=1)), 5) if len(values) > 1 else 0.0,
            "n": len(values)}


def summary(rows: list[dict]) -> dict:
    return {**{metric: mean_sd([r["test"][metric] for r in rows]) for metric in METRICS},
            "valid_ndcg@10": mean_sd([r["valid"]["ndcg@10"] for r in rows]),
            "time_to_best_s": mean_sd([r["time_to_best_s"] for r in rows]),
            "seconds_per_epoch": mean_sd([r["seconds_per_epoch"] for r in rows])}


def recbole_rows(model: str) -> list[dict]:
    name = RECBOLE_NAMES.get(model)
    if name is None:
        return []
    rows = []
    for path in sorted(RESULTS.glob(f"recbole_{name}_ml-100k*.json")):
        row = json.loads(path.read_text())
        if row.get("status") == "finished":
            epochs = row["history"][1:] or row["history"]
            rows.append({"file": path.name, "seed": row.get("seed", 2020), "ndcg@10": row["test"]["ndcg@10"],
                         "hr@10": row["test"]["hit@10"], "time_to_best_s": row["time_to_best_s"],
                         "best_epoch": row["best_epoch"], "epochs_run": row["epochs_run"],
                         "seconds_per_epoch": round(float(np.mean([e["seconds"] for e in epochs])), 1)})
    return rows


def recbole_summary(rows: list[dict]) -> dict:
    """Mean and sd over RecBole's finished runs (:func:`recbole_rows`) of what the table shows."""
    return {key: mean_sd([r[key] for r in rows]) for key in ("ndcg@10", "hr@10", "time_to_best_s", "seconds_per_epoch")}


def paired_bootstrap(ours: dict[str, list[float]], theirs: dict[str, list[float]], seed: int = 0) -> dict:
    """95% interval of the mean over users of (ours - theirs), users resampled with replacement."""
    rng = np.random.default_rng(seed)
    out = {}
    for metric in METRICS:
        difference = np.asarray(ours[metric]) - np.asarray(theirs[metric])
        if difference.shape != (len(ours[metric]),) or len(ours[metric]) != len(theirs[metric]):
            raise SystemExit("the two run sets rank different users: not comparable user by user")
        means = np.array([difference[rng.integers(0, len(difference), len(difference))].mean()
                          for _ in range(BOOTSTRAP_SAMPLES)])
        out[metric] = {"difference": round(float(difference.mean()), 5),
                       "ci95": [round(float(np.quantile(means, 0.025)), 5), round(float(np.quantile(means, 0.975)), 5)]}
    return out


def result_path(model: str, name: str) -> Path:
    return RESULTS / f"ml100k_{model}{'_' + name if name else ''}.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ml-100k folder (RecBole's atomic files)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", default="42,1,2,3,4", help="one run per seed")
    parser.add_argument("--name", default="", help="names a variant set (its own JSON): the options after --")
    parser.add_argument("--against", default=None, help="name of a finished set to compare with user by user "
                                                        "('' is the default set)")
    parser.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (RecBole's rows use 1)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once")
    parser.add_argument("extra", nargs="*", help="more train options, after --")
    args = parser.parse_args()
    if args.extra and not args.name:
        parser.error("train options after -- make a variant: name it with --name")
    seeds = [int(s) for s in args.seeds.split(",")]
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bench_ml100k_"))
    for model in args.models.split(","):
        run_dirs = [out_root / (args.name or "default") / model / f"seed{seed}" for seed in seeds]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_once, model, seed, args.data, run_dir, args.nice, args.threads, args.extra)
                       for seed, run_dir in zip(seeds, run_dirs)]
            for future in concurrent.futures.as_completed(futures):
                row = future.result()
                print(f"{model:<10} seed {row['seed']:<3} test ndcg@10 {row['test']['ndcg@10']:.4f}  "
                      f"hr@10 {row['test']['hr@10']:.4f}  best epoch {row['best_epoch']:>3}  "
                      f"{row['time_to_best_s']:7.1f} s to best  {row['seconds_per_epoch']:.1f} s/epoch", flush=True)
        rows = [future.result() for future in futures]
        per_user = {metric: [] for metric in METRICS}
        for run_dir in run_dirs:
            for metric, values in per_user_test_metrics(run_dir).items():
                per_user[metric].append(values)
        users = {metric: np.mean(values, axis=0).round(6).tolist() for metric, values in per_user.items()}
        payload = {"system": "seqrec-fast", "model": model, "dataset": "ml-100k", "name": args.name,
                   "protocol": rows[0]["protocol"], "extra_options": args.extra, "seeds": seeds,
                   "summary": summary(rows), "runs": rows, "recbole": recbole_rows(model),
                   "per_user_test_mean_over_seeds": users, "machine": machine(note="")}
        if payload["recbole"]:
            payload["recbole_summary"] = recbole_summary(payload["recbole"])
        if args.against is not None:
            other = json.loads(result_path(model, args.against).read_text())
            payload["against"] = {"name": args.against, "seeds": other["seeds"],
                                  **paired_bootstrap(users, other["per_user_test_mean_over_seeds"])}
        write_result(result_path(model, args.name), payload)
        print(format_summary(payload), flush=True)
    return 0


def format_summary(payload: dict) -> str:
    s = payload["summary"]
    lines = [f"{payload['model']} ({len(payload['seeds'])} seeds): test NDCG@10 {s['ndcg@10']['mean']:.4f} ± "
             f"{s['ndcg@10']['sd']:.4f}, HR@10 {s['hr@10']['mean']:.4f} ± {s['hr@10']['sd']:.4f}, "
             f"{s['time_to_best_s']['mean']:.0f} s to best, {s['seconds_per_epoch']['mean']:.1f} s per epoch"]
    if "recbole_summary" in payload:
        r = payload["recbole_summary"]
        lines.append(f"  RecBole ({r['ndcg@10']['n']} runs): NDCG@10 {r['ndcg@10']['mean']:.4f}, HR@10 "
                     f"{r['hr@10']['mean']:.4f}, {r['time_to_best_s']['mean']:.0f} s to best, "
                     f"{r['seconds_per_epoch']['mean']:.0f} s per epoch")
    if "against" in payload:
        a = payload["against"]["ndcg@10"]
        lines.append(f"  against {payload['against']['name'] or 'default'!r}: NDCG@10 {a['difference']:+.4f} "
                     f"(95% CI {a['ci95'][0]:+.4f} .. {a['ci95'][1]:+.4f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
