"""EASRec's elastic linear-attention SASRec. One class serves as the supernet (hidden size d, inner
size D, L layers, the candidate widths (w_i, D_i), and the architecture parameters alpha over the
widths and beta over the depths) and as a derived model (built at its own width, inner size and
depth, with that one width: nothing is sliced).

A block at width w, every weight a prefix slice of the supernet's (W[:out, :in], b[:out]; a
LayerNorm's weight and bias [:w], normalising over the w active features):

    M  = O linear_attention(Q x, K x, V x)    4 heads of width w/4, causal, padded keys masked
    S  = LN(x + dropout(M))
    F1 = GELU(W1 (delta1 * S) + b1)           D_w wide
    F2 = W2 (delta2 * F1) + b2
    T  = LN(S + dropout(F2))                  zeroed at padded positions

The data-aware gates (Eqs. 6-7) delta1 [w] and delta2 [D_w] read X, the layer-0 embedding at width
w: 2 sigmoid(Linear(ReLU(Linear(X)))) with two layers, 2 sigmoid(Linear(X)) with one. Every
linear map runs through ``ops.sliced_linear`` on the active prefix, so a narrower width multiplies
less. The embedding is item + position (counted from the first real item) -> LayerNorm ->
dropout; items are scored against the item embedding's first w features (tied output).

The supernet's representation under architecture weights p (widths) and q (depths) is
Y = sum_i sum_j p_i q_j h_i^(j), width i's output after j layers zero-padded to d, so that Y E^T
is the mixture of the candidates' scores (Eq. 11). A width of weight 0 does not run, nor do the
layers past the deepest depth of weight != 0: under one-hot weights the supernet computes exactly
the derived model with its slice of the weights. Training uses the step's Gumbel-softmax sample
(:meth:`ElasticSASRec.sample`); eval mode the most probable architecture, one-hot."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ...models.base import SequentialRecommender
from ...models.config import ModelConfig
from ...models.layers import Dropout, init_weights, positions_from_first_item
from ...models.sasrec import SASRec
from ...nas.relaxations import gumbel_softmax
from ...nas.slicing import sliced, sliced_norm
from ...ops import SlicedLinear
from .space import GATE_LAYERS, HEADS, most_probable

GATE_SCALE = 2.0  # gamma of Eq. 7: a gate scales by (0, 2), and starts at 2 sigmoid(0) = 1


class Gate(nn.Module):
    """A data-aware gate: 2 sigmoid of one or two linear maps of the embedding, ``out`` wide."""

    def __init__(self, hidden: int, out: int, layers: int):
        super().__init__()
        self.first = SlicedLinear(hidden, hidden) if layers == 2 else None
        self.last = SlicedLinear(hidden, out)

    def forward(self, embedded: Tensor, out: int) -> Tensor:
        x = embedded if self.first is None else torch.relu(sliced(self.first, embedded, embedded.shape[-1]))
        return GATE_SCALE * torch.sigmoid(sliced(self.last, x, out))


class ElasticBlock(nn.Module):
    """A post-LN block with linear attention and a gated feed-forward, run at any prefix width."""

    def __init__(self, hidden: int, inner: int, gate_layers: int, dropout: float):
        super().__init__()
        self.query, self.key, self.value, self.output = (SlicedLinear(hidden, hidden) for _ in range(4))
        self.attention_norm = nn.LayerNorm(hidden)
        self.expand = SlicedLinear(hidden, inner)
        self.contract = SlicedLinear(inner, hidden)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.input_gate = Gate(hidden, hidden, gate_layers) if gate_layers else None
        self.inner_gate = Gate(hidden, inner, gate_layers) if gate_layers else None
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, embedded: Tensor, padding: Tensor, inner: int) -> Tensor:
        """x and the layer-0 embedding [B, L, w] -> [B, L, w]; ``padding`` [B, L] True at padding,
        ``inner`` the feed-forward's width."""
        batch, length, width = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(batch, length, HEADS, width // HEADS).transpose(1, 2)

        q, k, v = (heads(sliced(projection, x, width)) for projection in (self.query, self.key, self.value))
        attended = ops.linear_attention(q, k, v, padding, causal=True).transpose(1, 2).reshape(batch, length, width)
        s = sliced_norm(self.attention_norm, x + self.dropout(sliced(self.output, attended, width)))
        gated = s if self.input_gate is None else s * self.input_gate(embedded, width)
        hidden = F.gelu(sliced(self.expand, gated, inner))
        if self.inner_gate is not None:
            hidden = hidden * self.inner_gate(embedded, inner)
        out = sliced_norm(self.feed_forward_norm, s + self.dropout(sliced(self.contract, hidden, width)))
        return out.masked_fill(padding.unsqueeze(-1), 0.0)


class ElasticSASRec(SequentialRecommender):
    """The supernet (with ``candidates``) or a derived model (without): see the module's docstring."""

    objective = "causal"
    causal = True
    # The fields it reads; a search fills them as SASRec's defaults do, with its own depth and 4
    # heads.
    defaults = {"num_layers": 4, "num_heads": HEADS, "inner_size": SASRec.defaults["inner_size"],
                "dropout": SASRec.defaults["dropout"]}

    def __init__(self, config: ModelConfig, n_items: int, gates: str,
                 candidates: Sequence[tuple[int, int]] | None = None, allowed: list[list[bool]] | None = None):
        """``candidates``: the supernet's (width, inner size) pairs; None builds a derived model
        (one width: the config's). ``allowed`` [width][depth - 1]: the candidates eval mode and
        derivation may choose (a FLOPs budget); None allows all."""
        super().__init__(config, n_items)
        if config.num_heads != HEADS:
            raise ValueError(f"EASRec runs {HEADS} heads at every width, got num_heads {config.num_heads}")
        if gates not in GATE_LAYERS:
            raise ValueError(f"unknown gates {gates!r}; valid: {', '.join(GATE_LAYERS)}")
        hidden, inner = config.hidden_size, config.inner_size
        self.gates = gates
        self.candidates = tuple(candidates) if candidates is not None else ((hidden, inner),)
        for width, width_inner in self.candidates:
            if not (0 < width <= hidden and width % HEADS == 0 and 0 < width_inner <= inner):
                raise ValueError(f"candidate width {width} (inner {width_inner}) does not fit a supernet of hidden "
                                 f"size {hidden} and inner size {inner} with {HEADS} heads")
        self.items = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.positions = nn.Embedding(config.max_len, hidden)
        self.embedding_norm = nn.LayerNorm(hidden)
        self.dropout = Dropout(config.dropout)
        self.layers = nn.ModuleList(ElasticBlock(hidden, inner, GATE_LAYERS[gates], config.dropout)
                                    for _ in range(config.num_layers))
        self.apply(init_weights)
        if candidates is None:
            self.register_parameter("alpha", None)
            self.register_parameter("beta", None)
        else:  # uniform: no candidate is preferred before the search
            self.alpha = nn.Parameter(torch.zeros(len(self.candidates)))
            self.beta = nn.Parameter(torch.zeros(config.num_layers))
        self.allowed = allowed
        self._sample: tuple[Tensor, Tensor] | None = None  # the current step's (p, q)

    @property
    def is_supernet(self) -> bool:
        return self.alpha is not None

    # -- the architecture --------------------------------------------------------------------
    def sample(self, temperature: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draws the step's soft Gumbel-softmax weights (p over widths, q over depths), which
        training forwards then use, and returns them."""
        self._sample = (gumbel_softmax(self.alpha, temperature, generator=generator),
                        gumbel_softmax(self.beta, temperature, generator=generator))
        return self._sample

    def chosen(self) -> tuple[int, int]:
        """(width index, depth) of the most probable allowed architecture under softmax(alpha)
        and softmax(beta)."""
        with torch.no_grad():
            widths, depths = torch.softmax(self.alpha, dim=0), torch.softmax(self.beta, dim=0)
            return most_probable(widths.tolist(), depths.tolist(), self.allowed)

    def architecture_weights(self) -> tuple[Tensor, Tensor]:
        """(p, q) of this forward: the sample in training, the chosen one-hot in eval mode."""
        if not self.training:
            i, depth = self.chosen()
            p, q = torch.zeros_like(self.alpha), torch.zeros_like(self.beta)
            p[i], q[depth - 1] = 1.0, 1.0
            return p, q
        if self._sample is None:
            raise RuntimeError("the supernet trains on sampled architecture weights: call sample() before each step")
        return self._sample

    # -- the model -----------------------------------------------------------------------------
    def embed(self, inputs: Tensor, padding: Tensor, width: int) -> Tensor:
        if inputs.shape[1] > self.positions.num_embeddings:
            raise ValueError(f"sequence length {inputs.shape[1]} exceeds the model's max_len "
                             f"{self.positions.num_embeddings}")
        positions = positions_from_first_item(~padding)
        x = (F.embedding(inputs, self.items.weight[:, :width], padding_idx=0)
             + F.embedding(positions, self.positions.weight[:, :width]))
        return self.dropout(sliced_norm(self.embedding_norm, x)).masked_fill(padding.unsqueeze(-1), 0.0)

    def layer_outputs(self, inputs: Tensor, padding: Tensor, candidate: int, depth: int) -> list[Tensor]:
        """The outputs [B, L, w] of the first ``depth`` layers at candidate width ``candidate``."""
        width, inner = self.candidates[candidate]
        x = embedded = self.embed(inputs, padding, width)
        outputs = []
        for block in self.layers[:depth]:
            x = block(x, embedded, padding, inner)
            outputs.append(x)
        return outputs

    def forward(self, inputs: Tensor) -> Tensor:
        padding = inputs == 0
        if not self.is_supernet:
            return self.layer_outputs(inputs, padding, 0, len(self.layers))[-1]
        p, q = self.architecture_weights()
        widths = [i for i, used in enumerate((p != 0).tolist()) if used]
        depths = [j for j, used in enumerate((q != 0).tolist()) if used]
        mixed = 0
        for i in widths:
            outputs = self.layer_outputs(inputs, padding, i, depths[-1] + 1)
            width_mix = sum(q[j] * outputs[j] for j in depths)
            mixed = mixed + F.pad(p[i] * width_mix, (0, self.config.hidden_size - width_mix.shape[-1]))
        return mixed

    def output_embedding(self):
        return self.items.weight, None
