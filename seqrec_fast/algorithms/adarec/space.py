"""AdaRec's search space, torch-free: the ten ops every edge chooses among and the cell's DAG.

A cell has NODES intermediate nodes; node j sums one op applied to each earlier state (the
cell's input is state 0, node j is state j + 1), so node 0 has 1 incoming edge, node 1 has 2 and
node 2 has 3: EDGES = 6. Every op is causal: convolutions see the current and earlier positions
only, pooling reads the last 3 positions."""

from __future__ import annotations

# (name, kernel, dilation) of the convolutions: the paper's standard (dilation 1), dilated and
# causal-dilated convolutions become one causal family, since a causal standard convolution is the
# causal dilated one at dilation 1.
CONVOLUTIONS = tuple((f"conv{k}_d{d}", k, d) for k in (3, 5) for d in (1, 2, 4))
POOLS = ("max_pool3", "avg_pool3")
POOL_WINDOW = 3
OPS: tuple[str, ...] = (*(name for name, _, _ in CONVOLUTIONS), *POOLS, "skip", "zero")
NODES = 3
# (source state, node) for every edge, in the order of the architecture parameters' rows.
EDGE_LIST: tuple[tuple[int, int], ...] = tuple((source, node) for node in range(NODES) for source in range(node + 1))
EDGES = len(EDGE_LIST)


def describe_cell(ops: tuple[str, ...] | list[str]) -> list[str]:
    """One line per node: which op each incoming edge applies to which state."""
    state = lambda s: "input" if s == 0 else f"node {s - 1}"
    lines = []
    for node in range(NODES):
        parts = [f"{ops[e]}({state(source)})" for e, (source, target) in enumerate(EDGE_LIST) if target == node]
        lines.append(f"node {node} = " + " + ".join(parts))
    return lines
