"""AdaRec's student: item embeddings, a stack of cells, a linear layer, items scored against the
embeddings. One class serves as the supernet (every edge holds all ten ops and the architecture
parameters ``alpha`` [EDGES, ops], shared by the cells) and as the derived student (one op per
edge).

A cell: node j = sum of its incoming edges' ops on earlier states; the cell's output is the
softmax-weighted sum of its nodes -> LayerNorm -> ReLU, plus the cell's input. Padding is zeroed
after every node and cell, so a left-padded sequence computes exactly what the ops' own zero
padding computes.

The supernet runs in one of three ways:
    training, ``mixed`` False  the sampled op of every edge alone (the weight steps: the
                               architecture is not stepped, so the other ops need no output)
    training, ``mixed`` True   every op, blended with the sample's straight-through one-hot
                               weights by the fused ``mix`` op, so that the gradient reaches every
                               architecture weight of an edge (the architecture steps)
    eval                       the argmax op of every edge (the architecture a search derives)"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ... import ops
from ...models.base import SequentialRecommender
from ...models.config import ModelConfig
from ...models.layers import Dropout, init_weights
from ...nas.cost import Cost, linear
from ...nas.relaxations import gumbel_softmax
from .cell_ops import build_op, op_cost
from .space import EDGE_LIST, EDGES, NODES, OPS

ALPHA_INIT_STD = 0.01  # the authors' initialisation of the architecture and node weights


class Edge(nn.Module):
    def __init__(self, channels: int, choices: tuple[str, ...]):
        super().__init__()
        self.choices = choices
        self.ops = nn.ModuleList(build_op(name, channels) for name in choices)

    def forward(self, x: Tensor, chosen: int, weights: Tensor | None) -> Tensor:
        if weights is None:
            return self.ops[chosen](x)
        return ops.mix(torch.stack([op(x) for op in self.ops]), weights)


class Cell(nn.Module):
    def __init__(self, channels: int, choices: list[tuple[str, ...]]):
        super().__init__()
        self.edges = nn.ModuleList(Edge(channels, edge_choices) for edge_choices in choices)
        self.node_weights = nn.Parameter(ALPHA_INIT_STD * torch.randn(NODES))
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor, valid: Tensor, chosen: list[int], weights: Tensor | None) -> Tensor:
        states = [x]
        for node in range(NODES):
            total = None
            for e, (source, target) in enumerate(EDGE_LIST):
                if target == node:
                    out = self.edges[e](states[source], chosen[e], None if weights is None else weights[e])
                    total = out if total is None else total + out
            states.append(total * valid)
        blended = ops.mix(torch.stack(states[1:]), torch.softmax(self.node_weights, dim=0))
        return (x + torch.relu(self.norm(blended))) * valid


class AdaRecStudent(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {"num_layers": 4, "dropout": 0.0}  # num_layers: cells

    def __init__(self, config: ModelConfig, n_items: int, cell: tuple[str, ...] | None = None):
        """``cell``: one op per edge (a derived student); None builds the supernet."""
        super().__init__(config, n_items)
        if cell is not None and len(cell) != EDGES:
            raise ValueError(f"a cell needs {EDGES} ops (one per edge), got {len(cell)}")
        self.cell = cell
        choices = [OPS if cell is None else (cell[e],) for e in range(EDGES)]
        width = config.hidden_size
        self.items = nn.Embedding(n_items + 1, width, padding_idx=0)
        self.dropout = Dropout(config.dropout)
        self.cells = nn.ModuleList(Cell(width, choices) for _ in range(config.num_layers))
        self.final = nn.Linear(width, width)
        self.apply(init_weights)
        if cell is None:
            self.alpha = nn.Parameter(ALPHA_INIT_STD * torch.randn(EDGES, len(OPS)))
        else:
            self.register_parameter("alpha", None)
        self.mixed = False  # supernet only: run every op (an architecture step)
        self._sample: Tensor | None = None  # the current step's one-hot sample [EDGES, ops]
        self.capture = False  # keep the embedding and cell outputs of the last forward (distillation)
        self.captured: tuple[Tensor, list[Tensor], Tensor] | None = None  # embedding, cells, output

    @property
    def is_supernet(self) -> bool:
        return self.alpha is not None

    # -- the architecture --------------------------------------------------------------------
    def sample(self, temperature: float, generator: torch.Generator | None = None) -> Tensor:
        """Draws the step's hard Gumbel-softmax sample (one for all cells) and returns it."""
        self._sample = gumbel_softmax(self.alpha, temperature, hard=True, generator=generator)
        return self._sample

    def derived_cell(self) -> tuple[str, ...]:
        if not self.is_supernet:
            return self.cell
        return tuple(OPS[k] for k in self.alpha.argmax(dim=-1).tolist())

    def _chosen(self) -> tuple[list[int], Tensor | None]:
        if not self.is_supernet:
            return [0] * EDGES, None
        if not self.training:
            return self.alpha.argmax(dim=-1).tolist(), None
        if self._sample is None:
            raise RuntimeError("the supernet trains on a sampled architecture: call sample() before each step")
        if self.mixed:
            return [0] * EDGES, self._sample
        return self._sample.argmax(dim=-1).tolist(), None

    # -- the model -----------------------------------------------------------------------------
    def encode(self, inputs: Tensor) -> Tensor:
        valid = (inputs > 0).unsqueeze(-1).to(self.items.weight.dtype)
        embedded = self.items(inputs)
        x = self.dropout(embedded) * valid
        chosen, weights = self._chosen()
        outputs = []
        for cell in self.cells:
            x = cell(x, valid, chosen, weights)
            outputs.append(x)
        if self.capture:
            self.captured = (embedded, outputs)
        return x

    def forward(self, inputs: Tensor) -> Tensor:
        valid = (inputs > 0).unsqueeze(-1).to(self.items.weight.dtype)
        hidden = self.final(self.encode(inputs)) * valid
        if self.capture:
            self.captured = (*self.captured, hidden)
        return hidden

    def forward_last(self, inputs: Tensor, last: int) -> Tensor:
        last = min(last, inputs.shape[1])
        valid = (inputs[:, -last:] > 0).unsqueeze(-1).to(self.items.weight.dtype)
        return self.final(self.encode(inputs)[:, -last:]) * valid

    def output_embedding(self):
        return self.items.weight, None


def student_cost(cell: tuple[str, ...], width: int, cells: int, n_items: int, length: int) -> Cost:
    """Parameters of a derived student and its multiply-adds to rank every item after one
    sequence of ``length`` items (``predict``: the cells over every position, the linear layer at
    the last one, the scores of all items)."""
    one_cell = sum((op_cost(name, width, length) for name in cell), Cost(0, 0)) + Cost(NODES + 2 * width, 0)
    embedding = Cost((n_items + 1) * width, 0)
    scoring = Cost(0, (n_items + 1) * width)
    return embedding + one_cell * cells + linear(width, width, 1) + scoring

