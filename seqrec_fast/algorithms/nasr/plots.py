"""NASR's plots in RUN_DIR/plots: the chosen table (layers by ops) and, per block, the
self-supervised loss over its training and the sorted selection losses of its paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...nas.search_run import SearchRun, pyplot
from .space import OPS


def plot_layers(run: SearchRun, layers: list[str], layers_per_block: int) -> Path:
    """The table-like space with the chosen op of every layer filled, blocks separated."""
    plt = pyplot()
    table = np.zeros((len(OPS), len(layers)))
    for layer, name in enumerate(layers):
        table[OPS.index(name), layer] = 1.0
    figure, axis = plt.subplots(figsize=(max(5, 0.45 * len(layers)), 2.6))
    axis.imshow(table, cmap="Blues", aspect="auto", vmin=0, vmax=1.3)
    for boundary in range(layers_per_block, len(layers), layers_per_block):
        axis.axvline(boundary - 0.5, color="grey", linewidth=1)
    axis.set_yticks(range(len(OPS)), OPS)
    axis.set_xticks(range(len(layers)), [str(i + 1) for i in range(len(layers))])
    axis.set(xlabel="layer", title="chosen op per layer")
    return run.save_figure(figure, plt, "layers.png")


def plot_block_losses(run: SearchRun, metrics: list[Path], tables: list[dict[str, Any]]) -> Path:
    """Left: each block's training loss per epoch; right: each block's path losses, sorted."""
    plt = pyplot()
    figure, (training, selection) = plt.subplots(1, 2, figsize=(10, 3.8))
    for block, path in enumerate(metrics):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        training.plot([r["epoch"] for r in records], [r["train_loss"] for r in records], marker=".",
                      label=f"block {block + 1}")
    for table in tables:
        selection.plot(sorted(table["loss"]), label=f"block {table['block'] + 1}")
    training.set(xlabel="epoch", ylabel="self-supervised loss", title="block supernets")
    selection.set(xlabel="path (sorted)", ylabel="selection loss", title="every path of each block")
    training.legend()
    selection.legend()
    return run.save_figure(figure, plt, "blocks.png")
