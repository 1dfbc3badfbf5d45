"""Our rows for the ml-100k comparison with RecBole (benchmarks/recbole_baseline.py has theirs).

RecBole's protocol for sequential models: leave-one-out, full ranking over all items with the
user's history NOT filtered, max_len 50, hidden 64, 2 layers, 2 heads, batch 256, lr 1e-3,
early stopping on validation NDCG@10; each backbone with its default loss (CE; STOSA its own).
Each run is the documented `seqrec-fast train ... --json` command; the wall time to the best
validation epoch is measured from the start of the command.

    python benchmarks/bench_ml100k.py --data ../shared/data/ml-100k [--models sasrec,bert4rec] [--nice 10]

Prints a table and writes benchmarks/results/ml100k_<model>.json (one row each, with the
command and the machine) and, when RecBole's row exists, the comparison."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import CLI, RESULTS, machine, write_result

PROTOCOL = ["--max-len", "50", "--hidden-size", "64", "--num-layers", "2", "--num-heads", "2",
            "--batch-size", "256", "--lr", "1e-3", "--no-filter-history"]
MODELS = ("sasrec", "bert4rec", "nextitnet", "gru4rec", "stosa")


def run_model(model: str, data: str, out_root: Path, nice: int, extra: list[str]) -> dict:
    loss = ["--loss", "ce"] if model != "stosa" else []
    command = [CLI, "train", "--model", model, "--data", data, "--out", str(out_root / model), *PROTOCOL,
               *loss, "--no-progress", "--json", *extra]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{model} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return row_from_run(model, result, command, wall, out_root / model)


def row_from_run(model: str, result: dict, command: list[str], wall: float, run_dir: Path) -> dict:
    import yaml

    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    return {
        "system": "seqrec-fast",
        "model": model,
        "dataset": "ml-100k",
        "protocol": result["protocol"],
        "loss": result["loss"],
        "valid": result["valid"],
        "test": result["test"],
        "best_epoch": result["best_epoch"],
        "epochs_run": result["epochs_run"],
        "stopped": result.get("stopped"),
        "time_to_best_s": result["time_to_best_s"],
        "total_s": round(wall, 1),
        "train_samples_per_s": result["train_samples_per_s"],
        "command": " ".join(shlex.quote(c) for c in command),
        "resolved_config": resolved,
        "machine": machine(note="CPU shared with other jobs"),
    }


def finished_or_interrupted_result(run_dir: Path) -> dict:
    """A run's result.json, or, for a run stopped before its end (a time budget), the same fields
    rebuilt from metrics.jsonl with the test split evaluated on its best checkpoint."""
    if (run_dir / "result.json").exists():
        return json.loads((run_dir / "result.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "valid" in r]
    best = max(evaluated, key=lambda r: r["valid"]["ndcg@10"])
    evaluation = subprocess.run([CLI, "evaluate", str(run_dir), "--split", "test", "--json"],
                                capture_output=True, text=True, check=True)
    test = json.loads(evaluation.stdout.strip().splitlines()[-1])
    import yaml

    from seqrec_fast.models import MODELS

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    name = config["model"]["name"]
    return {"model": name, "loss": config["loss"] or MODELS[name].default_loss,
            "protocol": test["protocol"], "valid": best["valid"], "test": test["test"],
            "best_epoch": best["epoch"], "epochs_run": records[-1]["epoch"], "time_to_best_s": best["elapsed_s"],
            "elapsed_s": records[-1]["elapsed_s"], "train_samples_per_s": None,
            "stopped": f"interrupted after epoch {records[-1]['epoch']} (session time budget); test = best checkpoint"}


def compare_with_recbole() -> None:
    """ml100k_sasrec_vs_recbole.json from the two SASRec rows, when both exist."""
    recbole, ours = RESULTS / "recbole_sasrec_ml-100k.json", RESULTS / "ml100k_sasrec.json"
    if not (recbole.exists() and ours.exists()):
        return
    theirs, mine = json.loads(recbole.read_text()), json.loads(ours.read_text())
    comparison = {
        "ndcg@10": {"seqrec_fast": mine["test"]["ndcg@10"], "recbole": theirs["test"]["ndcg@10"]},
        "hr@10": {"seqrec_fast": mine["test"]["hr@10"], "recbole": theirs["test"]["hit@10"]},  # RecBole's name
        "time_to_best_s": {"seqrec_fast": mine["time_to_best_s"], "recbole": theirs["time_to_best_s"]},
        "speedup_to_best": round(theirs["time_to_best_s"] / mine["time_to_best_s"], 1),
    }
    write_result(RESULTS / "ml100k_sasrec_vs_recbole.json", comparison)
    print(json.dumps(comparison, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--record", nargs=2, metavar=("RUN_DIR", "COMMAND"),
                        help="record a finished run (its result.json and config.yaml) instead of training")
    parser.add_argument("--note", default="", help="with --record: how the run went (kept in the row)")
    parser.add_argument("extra", nargs="*", help="more train options, after --")
    args = parser.parse_args()
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bench_ml100k_"))
    if args.record:
        run_dir, command = Path(args.record[0]), shlex.split(args.record[1])
        result = finished_or_interrupted_result(run_dir)
        runs = [(result["model"], lambda: row_from_run(result["model"], result, command, result["elapsed_s"], run_dir))]
    else:
        runs = [(m, lambda m=m: run_model(m, args.data, out_root, args.nice, args.extra)) for m in args.models.split(",")]
    for model, make_row in runs:
        row = make_row()
        if args.note:
            row["note"] = args.note
        write_result(RESULTS / f"ml100k_{model}.json", row)
        print(f"{model:<10} test ndcg@10 {row['test']['ndcg@10']:.4f}  hr@10 {row['test']['hr@10']:.4f}  "
              f"best epoch {row['best_epoch']:>3}  {row['time_to_best_s']:7.1f} s to best", flush=True)
    compare_with_recbole()
    return 0


if __name__ == "__main__":
    sys.exit(main())
