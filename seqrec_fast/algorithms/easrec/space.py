"""EASRec's search space, torch-free: one width for every layer, from keep fractions of the
supernet's hidden and inner sizes, times a depth in 1..L; and what each candidate costs.

A candidate is (width index i, depth j): it keeps the first w_i = round(keep_i d) hidden features
and the first D_i = round(keep_i D) inner units of every layer, and the first j layers, so every
candidate is a prefix of the supernet's weights. On the command line a candidate is KEEPxDEPTH:
``0.5x2`` keeps half the widths and 2 layers."""

from __future__ import annotations

from dataclasses import dataclass

from ...nas.cost import Cost, layer_norm, linear_transformer_block

HEADS = 4  # at every width: the head width is w / 4
GATE_LAYERS = {"two": 2, "one": 1, "none": 0}  # --gates: the layers of each data-aware gate
GATES = tuple(GATE_LAYERS)


@dataclass(frozen=True)
class Architecture:
    """A candidate by what it keeps: a fraction of the widths and a number of layers."""

    keep: float
    depth: int

    def __str__(self) -> str:
        return f"{self.keep:g}x{self.depth}"


def parse_architecture(text: str) -> Architecture:
    """KEEPxDEPTH, e.g. "0.5x2": keep 50% of the hidden and inner sizes, 2 layers."""
    keep, separator, depth = text.strip().lower().partition("x")
    try:
        parsed = Architecture(float(keep), int(depth))
    except ValueError:
        parsed = None
    if not separator or parsed is None:
        raise ValueError(f"architecture: expected KEEPxDEPTH such as 0.5x2 (keep 50% of the widths, 2 layers), "
                         f"got {text!r}")
    if not 0 < parsed.keep <= 1:
        raise ValueError(f"architecture {text!r}: the keep fraction must be in (0, 1], got {parsed.keep:g}")
    if parsed.depth < 1:
        raise ValueError(f"architecture {text!r}: the depth must be >= 1, got {parsed.depth}")
    return parsed


def candidate_index(architecture: Architecture, keep: tuple[float, ...], layers: int) -> tuple[int, int]:
    """(width index, depth) of ``architecture`` among the candidates of these keep fractions and
    layers; one outside them is refused."""
    if architecture.keep not in keep:
        raise ValueError(f"architecture {architecture}: keep {architecture.keep:g} is not one of the candidate keep "
                         f"fractions ({', '.join(f'{k:g}' for k in keep)})")
    if architecture.depth > layers:
        raise ValueError(f"architecture {architecture}: depth {architecture.depth} exceeds the supernet's {layers} "
                         "layers")
    return keep.index(architecture.keep), architecture.depth


@dataclass(frozen=True)
class Space:
    """The candidates of a supernet of ``layers`` layers at hidden size ``hidden`` and inner size
    ``inner``, one width per keep fraction (in the order given)."""

    keep: tuple[float, ...]
    hidden: int
    inner: int
    layers: int

    def __post_init__(self) -> None:
        for keep, width, inner in zip(self.keep, self.widths, self.inners):
            if width < HEADS or width % HEADS:
                raise ValueError(f"keep {keep:g} of hidden_size {self.hidden} gives width {width}, which the {HEADS} "
                                 f"heads do not divide: choose keep fractions (or a hidden_size) that give multiples "
                                 f"of {HEADS}")
            if inner < 1:
                raise ValueError(f"keep {keep:g} of inner_size {self.inner} leaves no inner unit")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(round(keep * self.hidden) for keep in self.keep)

    @property
    def inners(self) -> tuple[int, ...]:
        return tuple(round(keep * self.inner) for keep in self.keep)

    @property
    def architectures(self) -> list[tuple[int, int]]:
        """Every (width index, depth), widths in the order of ``keep``, then depths ascending."""
        return [(i, depth) for i in range(len(self.keep)) for depth in range(1, self.layers + 1)]

    def architecture(self, i: int, depth: int) -> Architecture:
        return Architecture(self.keep[i], depth)

    def index(self, architecture: Architecture) -> tuple[int, int]:
        return candidate_index(architecture, self.keep, self.layers)

    def describe(self, i: int, depth: int) -> dict:
        """The candidate as a run records it."""
        return {"architecture": str(self.architecture(i, depth)), "keep": self.keep[i], "width": self.widths[i],
                "inner": self.inners[i], "depth": depth}


def architecture_cost(width: int, inner: int, depth: int, gates: str, n_items: int, max_len: int) -> Cost:
    """Parameters of a derived model and its multiply-adds to rank every item after one sequence
    of ``max_len`` positions (``predict``): the embedding (item, position, LayerNorm), ``depth``
    blocks over every position, and the tied output's scores of all n_items + 1 columns at the
    last position."""
    embedding = Cost((n_items + 1 + max_len) * width, 0) + layer_norm(width)
    blocks = linear_transformer_block(width, inner, HEADS, max_len, GATE_LAYERS[gates]) * depth
    return embedding + blocks + Cost(0, (n_items + 1) * width)


def most_probable(width_probabilities: list[float], depth_probabilities: list[float],
                  allowed: list[list[bool]] | None = None) -> tuple[int, int]:
    """(width index, depth) of the largest p_i q_j among the ``allowed`` candidates ([width][depth
    - 1]; None: all); the first of equals. Over all candidates it is the argmax of each."""
    best, chosen = -1.0, None
    for i, p in enumerate(width_probabilities):
        for j, q in enumerate(depth_probabilities):
            if (allowed is None or allowed[i][j]) and p * q > best:
                best, chosen = p * q, (i, j + 1)
    if chosen is None:
        raise ValueError("no candidate architecture is allowed")
    return chosen
