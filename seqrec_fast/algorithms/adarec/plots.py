"""AdaRec's plots in RUN_DIR/plots: each edge's op probabilities over the search, the derived
cell as a graph, and the EMD flow between teacher layers and student cells."""

from __future__ import annotations

import json
from pathlib import Path

from ...nas.search_run import SearchRun, pyplot
from .space import EDGE_LIST, EDGES, NODES, OPS


def plot_architecture_history(run: SearchRun, metrics: Path) -> Path:
    """One panel per edge: softmax(alpha) of every op after each epoch."""
    plt = pyplot()
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    records = [r for r in records if "architecture" in r]
    epochs = [r["epoch"] for r in records]
    figure, axes = plt.subplots(2, (EDGES + 1) // 2, figsize=(12, 6), sharex=True, sharey=True)
    for e, axis in enumerate(axes.flat[:EDGES]):
        for k, name in enumerate(OPS):
            axis.plot(epochs, [r["architecture"][e][k] for r in records], marker=".", label=name)
        source, node = EDGE_LIST[e]
        axis.set(title=f"edge {e}: {'input' if source == 0 else f'node {source - 1}'} -> node {node}",
                 xlabel="epoch", ylabel="probability")
    axes.flat[0].legend(fontsize=7, ncol=2)
    return run.save_figure(figure, plt, "architecture.png")


def plot_cell(run: SearchRun, cell: tuple[str, ...]) -> Path:
    """The derived cell: its input, nodes and output on a line, each edge an arc with its op
    (zero edges dashed, since they pass nothing)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 4))
    names = ["input", *(f"node {j}" for j in range(NODES)), "output"]
    for x, name in enumerate(names):
        axis.annotate(name, (x, 0), ha="center", va="center", bbox={"boxstyle": "round", "fc": "lightyellow"})
    for e, (source, node) in enumerate(EDGE_LIST):
        start, end = source, node + 1
        height = 0.25 * (end - start)
        axis.annotate("", xy=(end, 0.05), xytext=(start, 0.05),
                      arrowprops={"arrowstyle": "->", "connectionstyle": f"arc3,rad=-{0.25 + 0.1 * (end - start)}",
                                  "linestyle": "--" if cell[e] == "zero" else "-"})
        axis.text((start + end) / 2, height + 0.08, cell[e], ha="center", fontsize=8)
    for node in range(NODES):
        axis.annotate("", xy=(NODES + 1, -0.05), xytext=(node + 1, -0.05),
                      arrowprops={"arrowstyle": "->", "color": "grey", "connectionstyle": "arc3,rad=0.3"})
    axis.set(xlim=(-0.5, NODES + 1.5), ylim=(-1.0, 1.3), title="derived cell (output: weighted sum of the nodes)")
    axis.axis("off")
    return run.save_figure(figure, plt, "cell.png")


def plot_flow(run: SearchRun, distillation_state: dict) -> Path:
    """The last training step's EMD flow, teacher layers by student cells, with the layer weights."""
    plt = pyplot()
    flow = distillation_state["flow"].float().numpy()
    figure, axis = plt.subplots(figsize=(5, 5))
    image = axis.imshow(flow, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axis, label="flow")
    teacher_weights = distillation_state["teacher_weights"].tolist()
    student_weights = distillation_state["student_weights"].tolist()
    axis.set_yticks(range(flow.shape[0]), [f"T{i + 1} ({w:.2f})" for i, w in enumerate(teacher_weights)])
    axis.set_xticks(range(flow.shape[1]), [f"S{j + 1}\n({w:.2f})" for j, w in enumerate(student_weights)])
    axis.set(xlabel="student cell (weight)", ylabel="teacher layer (weight)", title="EMD flow")
    return run.save_figure(figure, plt, "emd_flow.png")
