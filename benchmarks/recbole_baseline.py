"""RecBole 1.2.1 reference row for the ml-100k SASRec comparison (bench_ml100k.py has ours).

Runs in a separate virtualenv that has RecBole (it pins older libraries than this package):

    python3 -m venv /work/recbole-venv && /work/recbole-venv/bin/pip install recbole==1.2.1 torch
    nice -n 10 /work/recbole-venv/bin/python benchmarks/recbole_baseline.py \
        --data-path ../shared/data --model SASRec

Protocol (RecBole's for sequential models): leave-one-out by time, full ranking over all items
with the user's history NOT filtered, max_len 50, hidden 64, 2 layers, 2 heads, CE loss, batch
256, lr 1e-3, early stopping (10 evaluations) on validation NDCG@10; everything else at
RecBole's defaults. Wall time is measured from the start of this script to the end of the
validation that found the best epoch. Writes benchmarks/results/recbole_<model>_ml-100k.json."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

from _results import cpu_name, write_result  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)


EPOCH_LINE = re.compile(r"epoch (\d+) (training|evaluating) \[time: ([\d.]+)s, (?:train loss: [\d.]+|valid_score: ([\d.]+))")


def partial_row_from_log(log_path: Path, model: str, command: str) -> dict:
    """What an unfinished RecBole run has shown so far, from its log: per-epoch times and
    validation scores. No test metrics: RecBole evaluates the test split only at the end."""
    epochs: dict[int, dict] = {}
    for match in EPOCH_LINE.finditer(log_path.read_text()):
        epoch, phase, seconds, score = int(match[1]), match[2], float(match[3]), match[4]
        record = epochs.setdefault(epoch + 1, {"epoch": epoch + 1})
        record[f"{phase}_s"] = seconds
        if score is not None:
            record["valid_ndcg@10"] = float(score)
    history = [epochs[e] for e in sorted(epochs)]
    best = max((r for r in history if "valid_ndcg@10" in r), key=lambda r: r["valid_ndcg@10"], default=None)
    return {
        "system": "RecBole 1.2.1", "model": model, "dataset": "ml-100k", "status": "unfinished",
        "protocol": "leave-one-out, full ranking, history kept",
        "epochs_completed": len(history), "history": history,
        "best_valid_so_far": best,
        "train_and_valid_seconds_so_far": round(sum(r.get("training_s", 0) + r.get("evaluating_s", 0) for r in history), 1),
        "command": command, "log": str(log_path),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": 1, "note": "CPU shared with other jobs"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", help="folder holding ml-100k/ml-100k.inter")
    parser.add_argument("--from-log", metavar="LOG", help="summarise an unfinished run's console log instead of running")
    parser.add_argument("--command", default="", help="with --from-log: the command that produced the log")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.from_log:
        row = partial_row_from_log(Path(args.from_log), args.model, args.command)
        write_result(Path(args.out) / f"recbole_{args.model.lower()}_ml-100k_partial.json", row)
        print(json.dumps(row))
        return 0
    if not args.data_path:
        parser.error("--data-path is required")

    import torch
    from recbole.quick_start import run_recbole
    from recbole.trainer import Trainer

    torch.set_num_threads(args.threads)
    validations: list[tuple[float, float]] = []  # (seconds since start, valid score)
    original_valid_epoch = Trainer._valid_epoch

    def timed_valid_epoch(self, *a, **k):
        result = original_valid_epoch(self, *a, **k)
        validations.append((time.perf_counter() - STARTED, float(result[0])))
        return result

    Trainer._valid_epoch = timed_valid_epoch
    config = {
        "data_path": args.data_path,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50,
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": 256,
        "learning_rate": 1e-3,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
        "stopping_step": 10,
        "use_gpu": False,
        "checkpoint_dir": "/tmp/recbole_saved",
        "show_progress": False,
    }
    result = run_recbole(model=args.model, dataset="ml-100k", config_dict=config)
    best_score = result["best_valid_score"]
    best_index = next(i for i, (_, score) in enumerate(validations) if score == best_score)
    row = {
        "system": "RecBole 1.2.1",
        "model": args.model,
        "dataset": "ml-100k",
        "protocol": "leave-one-out, full ranking, history kept",
        "valid": {k.lower(): float(v) for k, v in result["best_valid_result"].items()},
        "test": {k.lower(): float(v) for k, v in result["test_result"].items()},
        "best_epoch": best_index + 1,
        "epochs_run": len(validations),
        "time_to_best_s": round(validations[best_index][0], 1),
        "total_s": round(time.perf_counter() - STARTED, 1),
        "command": "nice -n 10 " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "note": "CPU shared with other jobs"},
    }
    write_result(Path(args.out) / f"recbole_{args.model.lower()}_ml-100k.json", row)
    print(json.dumps(row))
    return 0



if __name__ == "__main__":
    sys.exit(main())
