"""RecBole 1.2.1 reference rows for the ml-100k comparison (bench_ml100k.py has ours).

Runs in a separate virtualenv that has RecBole (it needs older libraries than this package):

    python3 -m venv /work/recbole-venv && /work/recbole-venv/bin/pip install recbole==1.2.1 torch \
        "numpy<2" "pandas<2.3" "setuptools<70"
    /work/recbole-venv/bin/python benchmarks/recbole_baseline.py --data-path ../shared/data \
        --work-dir /work/recbole-run [--model GRU4Rec] [--seed 2020] [--resume] [--max-epochs-this-run N]

Protocol (RecBole's for sequential models): leave-one-out by time, full ranking over all items
with the user's history NOT filtered, max_len 50, CE loss, batch 256, lr 1e-3, early stopping
(10 evaluations) on validation NDCG@10 with RecBole's epoch budget (300), embeddings of 64;
SASRec and BERT4Rec with 2 layers of 2 heads and hidden size 64; every other architecture
setting at the model's own RecBole default (GRU4Rec: one layer of 128 units; NextItNet: blocks
[1, 4] x 5). RecBole ignores keys a model does not read, so the JSON records the configuration
that took effect: every key the model and trainer read, with its value.

RecBole trains one sample per prefix (about 99k per epoch on ml-100k), so on a small CPU its run
outlasts a working session. It is therefore resumable: after every epoch the work directory gets
RecBole's own checkpoint of that epoch (model, optimizer, early-stopping counter) and
history.json (per-epoch seconds and validation scores); `--resume` continues from them, and
`--max-epochs-this-run` stops cleanly after that many epochs. A resumed run restores everything
but the data loader's shuffling RNG, so its batches differ from an uninterrupted run's (the same
distribution). The time to the best epoch is the setup time plus the summed per-epoch training
and validation seconds up to it, whatever the interruptions. Writes
benchmarks/results/recbole_<model>_ml-100k.json once early stopping ends the run, and
recbole_<model>_ml-100k_partial.json (validation history so far) until then.

A session's machine does not outlive it, so an unfinished run's state (history.json, last.pth,
best.pth: about 5 MB) can be committed and copied to the next session's --work-dir, which
continues with --resume (the SASRec row was made that way over three sessions; its state was
removed once the run finished)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from _results import RESULTS, cpu_name, write_result

STARTED = time.perf_counter()
LAST = "last.pth"
BEST = "best.pth"
HISTORY = "history.json"


class Pause(Exception):
    """--max-epochs-this-run reached: the state is saved, the run can resume."""


TRANSFORMERS = {"hidden_size": 64, "n_layers": 2, "n_heads": 2}
ARCHITECTURE = {"SASRec": TRANSFORMERS, "BERT4Rec": TRANSFORMERS, "GRU4Rec": {"embedding_size": 64},
                "NextItNet": {"embedding_size": 64}}


def recbole_config(args) -> dict:
    if args.model not in ARCHITECTURE:
        raise SystemExit(f"--model: one of {', '.join(ARCHITECTURE)}, got {args.model!r}")
    return {
        "data_path": args.data_path,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50,
        **ARCHITECTURE[args.model],
        "seed": args.seed,
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
        "checkpoint_dir": str(Path(args.work_dir) / "recbole_saved"),
        "show_progress": False,
    }


def record_reads(config) -> set[str]:
    """The keys read from `config` from now on: what took effect, since RecBole's Config holds
    every key given, read or not."""
    keys: set[str] = set()
    read = type(config).__getitem__

    def recording(self, key):
        keys.add(key)
        return read(self, key)

    type(config).__getitem__ = recording
    return keys


def jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def result_name(args, finished: bool) -> str:
    seed = "" if args.seed == 2020 else f"_seed{args.seed}"  # the default seed keeps the first row's name
    return f"recbole_{args.model.lower()}_ml-100k{seed}{'' if finished else '_partial'}.json"


def lower_keys(result: dict) -> dict:
    return {k.lower(): float(v) for k, v in result.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True, help="folder holding ml-100k/ml-100k.inter")
    parser.add_argument("--work-dir", required=True, help="checkpoints and history (kept for --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work-dir")
    parser.add_argument("--max-epochs-this-run", type=int, default=0, help="stop (resumably) after this many epochs")
    parser.add_argument("--model", default="SASRec", help=f"one of {', '.join(ARCHITECTURE)}")
    parser.add_argument("--seed", type=int, default=2020, help="RecBole's seed (its default: 2020)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    history_path = work / HISTORY
    if args.resume and not (work / LAST).is_file():
        parser.error(f"--resume: {work / LAST} does not exist")
    if not args.resume and history_path.exists():
        parser.error(f"{work} holds a run already: pass --resume or choose another --work-dir")

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    torch.set_num_threads(args.threads)
    # RecBole 1.2.1 pickles its Config into its checkpoints and loads them with torch.load's old
    # default; since torch 2.6 that default is weights_only=True, which refuses them (the resume
    # and the final test evaluation both load one). These files are this script's own.
    load = torch.load
    torch.load = lambda *a, **k: load(*a, **{"weights_only": False, **k})
    history = json.loads(history_path.read_text()) if args.resume else {"setup_s": None, "epochs": [], "sessions": 0}
    history["sessions"] += 1
    config = Config(model=args.model, dataset="ml-100k", config_dict=recbole_config(args))
    read_keys = record_reads(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    history["effective_config"] = {key: jsonable(config[key]) for key in sorted(read_keys)}
    if args.resume:
        trainer.resume_checkpoint(work / LAST)
        trainer.best_valid_result = history["best_valid_result"]
    trainer.saved_model_file = str(work / BEST)  # resume_checkpoint pointed it at LAST
    if history["setup_s"] is None:
        history["setup_s"] = round(time.perf_counter() - STARTED, 2)

    epochs_this_run = 0
    epoch_started = time.perf_counter()

    def after_epoch(epoch_idx: int, valid_score: float) -> None:
        nonlocal epochs_this_run, epoch_started
        history["epochs"].append({"epoch": epoch_idx + 1, "seconds": round(time.perf_counter() - epoch_started, 2),
                                  "valid_ndcg@10": float(valid_score)})
        history["best_valid_result"] = {k: float(v) for k, v in (trainer.best_valid_result or {}).items()}
        trainer._save_checkpoint(epoch_idx, verbose=False, saved_model_file=str(work / LAST))
        write_result(history_path, history)
        write_result(Path(args.out) / result_name(args, finished=False), partial_row(args, history))
        epochs_this_run += 1
        if args.max_epochs_this_run and epochs_this_run >= args.max_epochs_this_run:
            raise Pause
        epoch_started = time.perf_counter()

    try:
        best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                                             callback_fn=after_epoch)
    except Pause:
        print(f"paused after {len(history['epochs'])} epochs; continue with --resume", file=sys.stderr)
        return 0
    test = trainer.evaluate(test_data, load_best_model=True, model_file=str(work / BEST), show_progress=False)
    row = final_row(args, history, best_score, lower_keys(best_valid), lower_keys(test), torch.__version__)
    write_result(Path(args.out) / result_name(args, finished=True), row)
    (Path(args.out) / result_name(args, finished=False)).unlink(missing_ok=True)
    print(json.dumps(row))
    return 0


def best_epoch(history: dict) -> dict:
    return max(history["epochs"], key=lambda e: e["valid_ndcg@10"])  # first of equals: RecBole's choice


def time_to(history: dict, epoch: int) -> float:
    return round(history["setup_s"] + sum(e["seconds"] for e in history["epochs"] if e["epoch"] <= epoch), 1)


def common_fields(args, history: dict) -> dict:
    return {
        "system": "RecBole 1.2.1", "model": args.model, "dataset": "ml-100k", "seed": args.seed,
        "effective_config": history.get("effective_config", {}),
        "protocol": "leave-one-out, full ranking, history kept",
        "history": history["epochs"], "sessions": history["sessions"],
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                    "note": "CPU shared with other jobs"},
    }


def partial_row(args, history: dict) -> dict:
    best = best_epoch(history)
    return {**common_fields(args, history), "status": "unfinished", "epochs_completed": len(history["epochs"]),
            "best_valid_so_far": best, "time_to_best_so_far_s": time_to(history, best["epoch"])}


def final_row(args, history: dict, best_score: float, valid: dict, test: dict, torch_version: str) -> dict:
    best = best_epoch(history)
    assert abs(best["valid_ndcg@10"] - best_score) < 1e-9, (best, best_score)
    row = {**common_fields(args, history), "status": "finished", "valid": valid, "test": test,
           "best_epoch": best["epoch"], "epochs_run": len(history["epochs"]),
           "time_to_best_s": time_to(history, best["epoch"]), "total_s": time_to(history, history["epochs"][-1]["epoch"])}
    row["machine"]["torch"] = torch_version
    return row


if __name__ == "__main__":
    sys.exit(main())
