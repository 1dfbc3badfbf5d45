"""The cost model: parameters and multiply-adds of a module or of a candidate architecture.

Searches that trade accuracy against size (EASRec, CANet, NASR's Pareto front) score candidates
analytically, without building them; :func:`counted` measures a built module (parameters by
their tensors, multiply-adds by torch's FLOP counter over one forward), and the tests hold the
two to each other. Multiply-adds are per forward over ``length`` positions of one sequence;
element-wise work (norms, activations, softmax, dropout) is not counted, as is usual."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    params: int
    multiply_adds: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.multiply_adds + other.multiply_adds)

    def __mul__(self, times: int) -> Cost:
        return Cost(self.params * times, self.multiply_adds * times)


def linear(in_features: int, out_features: int, length: int, bias: bool = True) -> Cost:
    return Cost(in_features * out_features + (out_features if bias else 0), length * in_features * out_features)


def layer_norm(features: int) -> Cost:
    return Cost(2 * features, 0)


def self_attention(hidden: int, length: int, queries: int | None = None) -> Cost:
    """Q, K, V and output projections, and the scores of every query against the L keys and
    their weighted sum of values (d multiply-adds per query-key pair each, whatever the number of
    heads). ``queries``: only the last ``queries`` positions query (a final block read at the last
    position); all L positions by default."""
    queries = length if queries is None else queries
    projections = linear(hidden, hidden, queries) + linear(hidden, 2 * hidden, length) + linear(hidden, hidden, queries)
    return projections + Cost(0, 2 * queries * length * hidden)


def linear_self_attention(hidden: int, heads: int, length: int) -> Cost:
    """Q, K, V and output projections, and causal linear attention (ops.linear_attention): each
    head of width d_h = hidden / heads keeps a d_h x d_h state that every key and value update
    and every query reads, 2 d_h^2 multiply-adds per position and head (2 L hidden^2 / heads)."""
    head = hidden // heads
    attention = Cost(0, 2 * length * heads * head * head)
    return linear(hidden, 3 * hidden, length) + linear(hidden, hidden, length) + attention


def feed_forward(hidden: int, inner: int, length: int) -> Cost:
    return linear(hidden, inner, length) + linear(inner, hidden, length)


def data_aware_gates(hidden: int, inner: int, length: int, layers: int) -> Cost:
    """EASRec's two gates of a block (Eqs. 6-7), both read from the hidden-wide embedding: one
    scales the feed-forward's input (hidden wide), the other its inner activation (inner wide).
    ``layers`` 2: Linear(hidden, hidden) -> ReLU -> Linear(hidden, out); 1: Linear(hidden, out);
    0: no gates."""
    if layers not in (0, 1, 2):
        raise ValueError(f"data-aware gates have 0, 1 or 2 layers, got {layers}")
    if layers == 0:
        return Cost(0, 0)
    first_layers = linear(hidden, hidden, length) * 2 if layers == 2 else Cost(0, 0)  # one per gate
    return first_layers + linear(hidden, hidden, length) + linear(hidden, inner, length)


def transformer_block(hidden: int, inner: int, length: int, queries: int | None = None) -> Cost:
    """Attention and a two-layer feed-forward, each with its LayerNorm (models.layers.TransformerBlock);
    ``queries``: the block's output at the last ``queries`` positions only."""
    queries = length if queries is None else queries
    return self_attention(hidden, length, queries) + feed_forward(hidden, inner, queries) + layer_norm(hidden) * 2


def scaled_transformer_block(hidden: int, inner: int, length: int, queries: int | None = None) -> Cost:
    """:func:`transformer_block` with a learnable scale on each residual branch (NASR's and
    CANet's linear residual)."""
    return transformer_block(hidden, inner, length, queries) + Cost(2, 0)


def linear_transformer_block(hidden: int, inner: int, heads: int, length: int, gate_layers: int = 0) -> Cost:
    """A post-LN block with linear attention, a two-layer feed-forward and EASRec's data-aware
    gates of ``gate_layers`` layers (0: none)."""
    return (linear_self_attention(hidden, heads, length) + feed_forward(hidden, inner, length)
            + layer_norm(hidden) * 2 + data_aware_gates(hidden, inner, length, gate_layers))


def transformer(num_layers: int, hidden: int, inner: int, length: int) -> Cost:
    """A candidate's stack of Transformer blocks (a depth and widths chosen by a search)."""
    return transformer_block(hidden, inner, length) * num_layers


def projected_transformer(embedding: int, hidden: int, depth: int, n_items: int, length: int) -> Cost:
    """Parameters and multiply-adds to rank every item after one sequence of ``length`` positions
    for a SASRec whose item and position embeddings (``length`` positions, LayerNorm) are
    ``embedding`` wide and projected to ``hidden``, with ``depth`` blocks of 4 hidden-wide
    feed-forwards and scaled residuals, the last one read at the final position only, and an
    untied classifier with a bias over all n_items + 1 columns there: a CANet route."""
    embedded = Cost((n_items + 1 + length) * embedding, 0) + layer_norm(embedding) + linear(embedding, hidden, length)
    blocks = scaled_transformer_block(hidden, 4 * hidden, length) * (depth - 1)
    exit_block = scaled_transformer_block(hidden, 4 * hidden, length, queries=1)
    return embedded + blocks + exit_block + linear(hidden, n_items + 1, 1)


def sequence_router(width: int, inner: int, routes: int, n_items: int, length: int) -> Cost:
    """A one-block SASRec (embeddings ``width`` wide, LayerNorm, a post-LN block with an
    ``inner``-wide feed-forward) read at the last of ``length`` positions into ``routes`` logits:
    CANet's router."""
    embedded = Cost((n_items + 1 + length) * width, 0) + layer_norm(width)
    return embedded + transformer_block(width, inner, length, queries=1) + linear(width, routes, 1)


def counted(module, *inputs, method: str = "forward") -> Cost:
    """The cost of a built module, measured: its parameters, and the multiply-adds torch's FLOP
    counter sees in one call of ``method`` (a model's ``predict``, say) on ``inputs`` (it counts a
    multiply-add as 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        getattr(module, method)(*inputs)
    return Cost(params, counter.get_total_flops() // 2)
