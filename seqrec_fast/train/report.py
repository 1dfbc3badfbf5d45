"""Readable outputs of a run: the metrics table and the training-curve plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_bytes
from .metrics import DEFAULT_CUTOFFS, METRIC_NAMES


def metrics_table(splits: dict[str, dict[str, float]], cutoffs=DEFAULT_CUTOFFS) -> str:
    """Rows: metric@k (and AUC); one column per split."""
    names = list(splits)
    rows = [f"{name}@{k}" for name in METRIC_NAMES if name != "recall" for k in cutoffs] + ["auc"]
    width = max(len(r) for r in rows) + 2
    columns = [max(10, len(n) + 2) for n in names]
    lines = ["metric".ljust(width) + "".join(n.rjust(c) for n, c in zip(names, columns))]
    for row in rows:
        lines.append(row.ljust(width) + "".join(f"{splits[n].get(row, float('nan')):{c}.4f}" for n, c in zip(names, columns)))
    return "\n".join(lines)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_training_curve(metrics_path: Path, out_path: Path, metric: str = "ndcg@10") -> Path:
    """Training loss and the validation metric per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot([r["epoch"] for r in records], [r["train_loss"] for r in records], marker=".")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="training loss")
    evaluated = [r for r in records if "valid" in r]
    metric_axis.plot([r["epoch"] for r in evaluated], [r["valid"][metric] for r in evaluated], marker=".", color="C1")
    metric_axis.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"validation {metric}")
    figure.tight_layout()
    atomic_write_bytes(Path(out_path), lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)
    return Path(out_path)
