"""Model selection for SASRec on ml-100k under RecBole's protocol: how much of the test score
early stopping on a noisy validation metric leaves behind, seed by seed.

    python benchmarks/bench_selection.py --data ../shared/data/ml-100k --out /tmp/selection \\
        [--seeds 42,1,2,3] [--epochs 60] [--patience 10,15,20,30] [--threads 1] \\
        [--name NAME -- TRAIN OPTIONS]

Each seed trains the documented command's configuration (benchmarks/bench_ml100k.py: max_len 50,
d 64, 2 layers, 2 heads, CE, batch 256, lr 1e-3, history kept, SASRec's default windows) for
--epochs epochs without early stopping. After every epoch it scores validation and, for this
analysis only, the test split; neither changes the training. Early stopping with each --patience
is then replayed on the validation curve (the first epoch with the best valid NDCG@10 among those
run before the patience ran out), giving the test score that rule would have reported next to the
test mean over windows of epochs. Seeds run one after another; a seed whose run finished is read
back when the script is started again with the same --out, so seeds can run as parallel processes
(one --seeds each) and a last call with all of them writes the table. Prints it and writes
benchmarks/results/ml100k_sasrec_selection.json. Train options after ``--`` (``-- --stride 1``) change
the configuration for a comparison; --name then keeps its runs and its JSON apart
(ml100k_sasrec_selection_NAME.json)."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
from pathlib import Path

from _results import RESULTS, machine, write_result
from bench_ml100k import PROTOCOL

EPOCH_WINDOWS = ((11, 20), (21, 40), (41, 60))
CURVE = "curve.jsonl"


def train_with_test_curve(data: str, run_dir: Path, seed: int, epochs: int, threads: int,
                          extra: list[str]) -> list[dict]:
    """Valid and test metrics after every epoch of one run, also written to run_dir/curve.jsonl
    (complete once run_dir/result.json exists)."""
    from seqrec_fast.cli import build_parser
    from seqrec_fast.train.commands import _overrides
    from seqrec_fast.train.config import build_config
    from seqrec_fast.train.data_source import open_dataset
    from seqrec_fast.train.trainer import Trainer

    class RecordingTrainer(Trainer):
        def _validate(self, split: str = "valid") -> dict[str, float]:
            metrics = super()._validate(split)
            if split == "valid":
                test = super()._validate("test")
                curve.append({"epoch": self.progress.epoch, "valid_ndcg@10": metrics["ndcg@10"],
                              "test_ndcg@10": test["ndcg@10"], "test_hr@10": test["hr@10"]})
            return metrics

    shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run starts over
    # The documented command's config (what `seqrec-fast train` would run), without early stopping.
    argv = ["train", "--model", "sasrec", "--data", data, "--out", str(run_dir), *PROTOCOL, "--loss", "ce",
            "--no-progress", "--patience", "0", "--epochs", str(epochs), "--seed", str(seed), "--threads", str(threads),
            *extra]
    config = build_config(overrides=_overrides(build_parser().parse_args(argv)))
    curve: list[dict] = []
    trainer = RecordingTrainer(config, open_dataset(config.data))
    trainer.fit()
    (run_dir / CURVE).write_text("".join(json.dumps(point) + "\n" for point in curve))
    return curve


def read_curve(run_dir: Path) -> list[dict] | None:
    if (run_dir / "result.json").is_file() and (run_dir / CURVE).is_file():
        return [json.loads(line) for line in (run_dir / CURVE).read_text().splitlines()]
    return None


def replay_early_stopping(curve: list[dict], patience: int) -> dict:
    """What the trainer's early stopping (strict improvement, `patience` evaluations) would select."""
    best, waited = curve[0], 0
    for point in curve[1:]:
        if point["valid_ndcg@10"] > best["valid_ndcg@10"]:
            best, waited = point, 0
        else:
            waited += 1
            if waited >= patience:
                return {**best, "stopped_at": point["epoch"]}
    return {**best, "stopped_at": None}  # the epoch budget ran out first


def window_means(curve: list[dict]) -> dict:
    means = {}
    for first, last in EPOCH_WINDOWS:
        points = [p for p in curve if first <= p["epoch"] <= last]
        if points:
            means[f"{first}-{last}"] = {key: statistics.fmean(p[key] for p in points)
                                        for key in ("valid_ndcg@10", "test_ndcg@10", "test_hr@10")}
    return means


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="run directories (finished seeds are read back)")
    parser.add_argument("--seeds", default="42,1,2,3", type=lambda text: [int(s) for s in text.split(",")])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", default="10,15,20,30", type=lambda text: [int(p) for p in text.split(",")])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="", help="a name for the variant the train options make")
    parser.add_argument("extra", nargs="*", help="more train options, after --")
    args = parser.parse_args()
    if args.extra and not args.name:
        parser.error("train options after -- need a --name for the variant")
    suffix = f"_{args.name}" if args.name else ""
    seeds = []
    for seed in args.seeds:
        run_dir = Path(args.out) / f"seed{seed}{suffix}"
        curve = read_curve(run_dir) or train_with_test_curve(args.data, run_dir, seed, args.epochs, args.threads,
                                                             args.extra)
        seeds.append({"seed": seed, "curve": curve, "epoch_windows": window_means(curve),
                      "early_stopping": {str(p): replay_early_stopping(curve, p) for p in args.patience}})

    print(f"{'seed':>5} " + " ".join(f"{'patience ' + str(p):>22}" for p in args.patience)
          + "".join(f"{'test, epochs ' + w:>20}" for w in seeds[0]["epoch_windows"]))
    for row in seeds:
        chosen = " ".join(f"{'ep ' + str(c['epoch']):>8} {c['test_ndcg@10']:.4f}/{c['test_hr@10']:.3f}"
                          for c in row["early_stopping"].values())
        windows = "".join(f"{m['test_ndcg@10']:>20.4f}" for m in row["epoch_windows"].values())
        print(f"{row['seed']:>5} {chosen}{windows}")
    summary = {f"patience {p}": {key: statistics.fmean(r["early_stopping"][str(p)][key] for r in seeds)
                                 for key in ("test_ndcg@10", "test_hr@10")} for p in args.patience}
    print("mean  " + "  ".join(f"patience {p}: {s['test_ndcg@10']:.4f}/{s['test_hr@10']:.4f}"
                               for p, s in zip(args.patience, summary.values())))
    write_result(RESULTS / f"ml100k_sasrec_selection{suffix}.json", {
        "benchmark": "early stopping replayed on per-epoch valid and test curves, SASRec on ml-100k",
        "protocol": "leave-one-out, full ranking, history kept; max_len 50, d 64, 2 layers, 2 heads, CE, batch 256, "
                    "lr 1e-3, SASRec's default windows; the test split is scored every epoch for this analysis "
                    "only and never selects anything",
        "variant": {"name": args.name, "train_options": args.extra} if args.name else None,
        "epochs": args.epochs, "seeds": seeds, "summary": summary,
        "command": shlex.join([sys.executable, *sys.argv]), "machine": machine(note="CPU shared with other jobs"),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
