"""EASRec's plots in RUN_DIR/plots: the width and depth probabilities over the search, and every
candidate's validation accuracy against its multiply-adds and its measured scoring time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...nas.search_run import SearchRun, pyplot
from .space import Space


def plot_architecture_history(run: SearchRun, metrics: Path, space: Space) -> Path:
    """softmax(alpha) per width and softmax(beta) per depth after each epoch, from the uniform
    start (epoch 0)."""
    plt = pyplot()
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    start = {"epoch": 0, "alpha": [1 / len(space.keep)] * len(space.keep), "beta": [1 / space.layers] * space.layers}
    records = [start, *(r for r in records if "alpha" in r)]
    epochs = [r["epoch"] for r in records]
    figure, (widths, depths) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, keep in enumerate(space.keep):
        widths.plot(epochs, [r["alpha"][i] for r in records], marker=".",
                    label=f"keep {keep:g} (width {space.widths[i]})")
    for j in range(space.layers):
        depths.plot(epochs, [r["beta"][j] for r in records], marker=".", label=f"{j + 1} layer{'s' if j else ''}")
    widths.set(xlabel="epoch", ylabel="probability", title="width: softmax(alpha)")
    depths.set(xlabel="epoch", title="depth: softmax(beta)")
    widths.legend(fontsize=8)
    depths.legend(fontsize=8)
    return run.save_figure(figure, plt, "architecture.png")


def plot_pareto(run: SearchRun, candidates: list[dict[str, Any]], chosen: str, metric: str) -> Path:
    """Validation ``metric`` of every candidate (the supernet's weights) against its multiply-adds
    and against its measured scoring time, the chosen one circled."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, key, label in ((axes[0], "multiply_adds", "multiply-adds to rank all items for one sequence"),
                             (axes[1], "scoring_ms", "ms to rank all items for the timed users (CPU, 1 thread)")):
        xs = [c[key] for c in candidates]
        ys = [c["valid"][metric] for c in candidates]
        axis.scatter(xs, ys, s=18)
        for c, x, y in zip(candidates, xs, ys):
            axis.annotate(c["architecture"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if c["architecture"] == chosen:
                axis.scatter([x], [y], s=160, facecolors="none", edgecolors="red", label=f"chosen: {chosen}")
        axis.set(xlabel=label, xscale="log")
        axis.legend(fontsize=8)
    axes[0].set(ylabel=f"validation {metric} (supernet weights)", title="accuracy against multiply-adds")
    axes[1].set(title="accuracy against measured time")
    return run.save_figure(figure, plt, "pareto.png")
