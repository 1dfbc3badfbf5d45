"""NASR's ops, its supernet (every op at every layer) and the hybrid a search derives (one op per
layer), built from the same op modules, so that a path through the supernet computes what the
hybrid of those ops computes with the same weights.

Each op maps [B, L, d] to [B, L, d] with the linear residual of the paper (a learnable scale,
starting at 0, on every residual branch, Eqs. 1-3), so a freshly built op passes its input
through (a Transformer op's post-LayerNorms aside). Padded positions are zeroed after every layer: attention masks padded keys,
and a convolution then reads padding as the zeros it pads with, so the amount of left padding
never changes a real position."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ...models.base import SequentialRecommender
from ...models.config import ModelConfig
from ...models.layers import ItemPositionEmbedding, TransformerBlock, init_weights
from ...models.nextitnet import ResidualConvBlock
from ...ops.modules import attention_mask
from .space import DILATIONS, HEADS, MODEL_DEFAULTS, OPS, check_op

KERNEL = 3
FFN_RATIO = 4


class TransformerOp(nn.Module):
    """trm4 / trm8: causal self-attention and FFN 4d (GELU), each h = LN(h + a * sublayer(h))."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.block = TransformerBlock(width, heads, FFN_RATIO * width, dropout, dropout, residual="scaled")

    def forward(self, x: Tensor, mask: Tensor, valid: Tensor) -> Tensor:
        return self.block(x, mask)


class ConvolutionOp(nn.Module):
    """tcn12 / tcn14: two NextItNet residual blocks (two causal convolutions each, dilations d
    and 2d) at the op's two dilations, each h = h + a * branch(h)."""

    def __init__(self, width: int, dilations: tuple[int, int]):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualConvBlock(width, KERNEL, d, residual="scaled") for d in dilations)

    def forward(self, x: Tensor, mask: Tensor, valid: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, valid) * valid
        return x


def make_op(name: str, width: int, dropout: float) -> nn.Module:
    check_op(name)
    if name in HEADS:
        if width % HEADS[name]:
            raise ValueError(f"width {width} is not divisible into the {HEADS[name]} heads of {name}")
        return TransformerOp(width, HEADS[name], dropout)
    return ConvolutionOp(width, DILATIONS[name])


class Embedded:
    """A batch of sequences after the embedding: the stream [B, L, d], the causal attention mask
    and the real positions [B, L, 1]."""

    def __init__(self, x: Tensor, mask: Tensor, valid: Tensor):
        self.x, self.mask, self.valid = x, mask, valid

    @classmethod
    def of(cls, x: Tensor, inputs: Tensor) -> Embedded:
        valid = (inputs > 0).unsqueeze(-1).to(x.dtype)
        return cls(x * valid, attention_mask(inputs > 0, causal=True), valid)

    def rows(self, rows: slice) -> Embedded:
        return Embedded(self.x[rows], self.mask[rows], self.valid[rows])

    def apply(self, op: nn.Module) -> None:
        self.x = op(self.x, self.mask, self.valid) * self.valid


class NASRSupernet(nn.Module):
    """Every op at every layer, sharing one embedding. The embedding has a mask token
    (n_items + 1) for the masking augmentation. A path names an op index per layer."""

    objective = "causal"

    def __init__(self, config: ModelConfig, n_items: int, layers: int):
        super().__init__()
        self.config, self.n_items = config, n_items
        width = config.hidden_size
        self.embedding = ItemPositionEmbedding(n_items + 2, config.max_len, width, config.dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(make_op(name, width, config.dropout) for name in OPS) for _ in range(layers))
        self.apply(init_weights)

    def embed(self, inputs: Tensor) -> Embedded:
        return Embedded.of(self.embedding(inputs, inputs > 0), inputs)

    def run(self, stream: Embedded, first_layer: int, path: Sequence[int]) -> Embedded:
        """Applies ``path`` (one op index per layer) from layer ``first_layer`` on, in place."""
        for offset, op in enumerate(path):
            stream.apply(self.layers[first_layer + offset][op])
        return stream

    def path_modules(self, path: Sequence[int]) -> list[nn.Module]:
        """The embedding and the ops of ``path`` from layer 0 on."""
        return [self.embedding, *(self.layers[layer][op] for layer, op in enumerate(path))]

    def forward(self, inputs: Tensor, path: Sequence[int]) -> Tensor:
        """[B, L, d] after the first len(path) layers on ``path``."""
        return self.run(self.embed(inputs), 0, path).x


class NASRHybrid(SequentialRecommender):
    """The derived model: item and position embeddings, one op per layer, and an output layer
    untied from the item embedding (scores = h W^T + b)."""

    causal = True
    objective = "causal"
    defaults = MODEL_DEFAULTS

    def __init__(self, config: ModelConfig, n_items: int, layers: Sequence[str]):
        super().__init__(config, n_items)
        width = config.hidden_size
        self.layer_ops = tuple(layers)
        self.embedding = ItemPositionEmbedding(n_items + 1, config.max_len, width, config.dropout)
        self.layers = nn.ModuleList(make_op(name, width, config.dropout) for name in self.layer_ops)
        self.output = nn.Linear(width, n_items + 1)
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        stream = Embedded.of(self.embedding(inputs, inputs > 0), inputs)
        for op in self.layers:
            stream.apply(op)
        return stream.x

    def output_embedding(self) -> tuple[Tensor, Tensor]:
        return self.output.weight, self.output.bias


def path_ops(path: Sequence[int]) -> tuple[str, ...]:
    return tuple(OPS[i] for i in path)


def op_indices(names: Sequence[str]) -> tuple[int, ...]:
    return tuple(OPS.index(check_op(name)) for name in names)
