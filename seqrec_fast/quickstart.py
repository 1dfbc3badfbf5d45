"""`seqrec-fast quickstart`: the README's main job.

Generates the embedded synthetic dataset (MovieLens-100K-sized, with planted sequential
structure), trains SASRec with early stopping on validation NDCG@10, evaluates the best
checkpoint once on the test split next to a popularity baseline, prints the metrics table and
writes a training-curve plot. A few minutes on 2 CPU cores."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

RUNS = Path("runs") / "quickstart"
SETTINGS = {
    "model": "sasrec", "data": "synthetic:ml-100k", "max_len": 50, "hidden_size": 64, "num_layers": 2,
    "num_heads": 2, "lr": 2e-3, "dropout": 0.2, "attn_dropout": 0.2, "epochs": 40, "patience": 5,
    # Disjoint windows, about 256 of them (12,800 targets) per batch: an epoch takes few steps,
    # so the whole job takes minutes rather than the strided default's longer training.
    "window": "sliding", "batch_size": 12800,
}


def popularity_metrics(dataset, config) -> dict[str, float]:
    """Test metrics of ranking every item by its training popularity (the baseline to beat)."""
    import torch

    from .train.evaluation import Popularity, evaluate

    loader = dataset.eval_loader(split="test", batch_size=config.eval_batch_size, max_len=config.model.max_len)
    return evaluate(Popularity(dataset.item_counts()), loader, torch.device("cpu"),
                    filter_history=config.filter_history, ties=config.ties)


def run(json_output: bool = False) -> int:
    from .train.config import build_config
    from .train.data_source import open_dataset
    from .train.report import metrics_table, plot_training_curve
    from .train.run_dir import claim
    from .train.trainer import METRICS, Trainer

    started = time.perf_counter()
    out = RUNS / time.strftime("%Y%m%d-%H%M%S")
    config = build_config(overrides={**SETTINGS, "out": str(out), "progress": not json_output})
    dataset = open_dataset(config.data)
    stats = dataset.stats()
    if not json_output:
        print(f"dataset: {config.data} — {stats['users']} users, {stats['items']} items, "
              f"{stats['interactions']} interactions (leave-one-out)", file=sys.stderr)
    with claim(out, "train"):
        result = Trainer(config, dataset, started_at=started,
                         log=(lambda message: None) if json_output else None).fit()
        plot = plot_training_curve(out / METRICS, out / "training_curve.png", config.metric)
    baseline = popularity_metrics(dataset, config)
    summary = {**result, "popularity_test": baseline, "plot": str(plot),
               "seconds": round(time.perf_counter() - started, 1)}
    if json_output:
        print(json.dumps(summary))
        return 0
    print(f"\nSASRec on the synthetic dataset ({result['protocol']}): best epoch {result['best_epoch']} "
          f"of {result['epochs_run']}, {result['train_samples_per_s']:.0f} training sequences/s")
    print(metrics_table({"valid": result["valid"], "test": result["test"], "popularity": baseline}))
    print(f"\ntraining curve: {plot}\nrun directory:  {out}\ndone in {summary['seconds']} s")
    return 0
