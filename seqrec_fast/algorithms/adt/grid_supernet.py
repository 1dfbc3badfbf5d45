"""The ADT grid supernet: every layer of a backbone becomes an M x M grid of candidate layers,
run at continuous coordinates (ADT, Eqs. 18-20).

The backbone is converted in place, so the supernet is still that backbone (same embeddings,
scoring, objective, evaluation): only its blocks change. Transformer blocks (SASRec, BERT4Rec)
become :class:`~seqrec_fast.ops.GridTransformerLayer`, whose 4 corner candidates run batched
through the fused ``grid_linear`` op. Other blocks (STOSA's Wasserstein attention) become
:class:`CopiedGridBlock`: M x M independent copies, the 4 corners run one after the other and
their outputs are blended with the same bilinear weights (slower, but exact for any block).

Coordinates live on the blocks (``set_coordinates``), so the backbone's own forward needs no new
argument and a supernet forward costs about 4 backbone forwards whatever M is."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from ... import ops
from ...models.layers import TransformerBlock
from .weight_grid import check_coordinate

Coordinates = tuple[float, float]


class GridBlock(nn.Module):
    """Base of the two grid blocks: holds the layer's current coordinates."""

    def __init__(self, grid_size: int):
        super().__init__()
        if grid_size < 2:
            raise ValueError(f"a grid supernet needs at least 2 points per axis, got {grid_size}")
        self.grid_size = grid_size
        self.coordinates: Coordinates = (0.0, 0.0)

    def set_coordinates(self, coordinates: Sequence[float]) -> None:
        if len(coordinates) != 2:
            raise ValueError(f"a grid layer takes 2 coordinates, got {list(coordinates)}")
        self.coordinates = tuple(check_coordinate(c, "grid coordinate") for c in coordinates)

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, coordinates={self.coordinates}"


class FusedTransformerGridBlock(GridBlock):
    """A :class:`TransformerBlock` slot (``forward(x, mask)``) filled by a grid of Transformer
    layers that run their 4 corners batched (``GridTransformerLayer``)."""

    def __init__(self, block: TransformerBlock, grid_size: int, causal: bool):
        super().__init__(grid_size)
        attention, ffn = block.attention, block.feed_forward.net
        hidden = attention.out.in_features
        # The block's own regularisation: its residual and attention dropouts, none inside the FFN.
        self.layer = ops.GridTransformerLayer(
            hidden, attention.num_heads, ffn[0].out_features, grid_size,
            dropout=block.attention_residual.dropout.p, activation="gelu", norm_first=False, causal=causal,
            layer_norm_eps=block.attention_residual.norm.eps, attn_dropout=attention.attn_dropout.p,
            inner_dropout=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.layer(x, self.coordinates, attn_mask=mask)


class CopiedGridBlock(GridBlock):
    """Any block, as M x M independent copies; the 4 around the coordinates run and blend."""

    def __init__(self, block: nn.Module, grid_size: int):
        super().__init__(grid_size)
        self.candidates = nn.ModuleList(copy.deepcopy(block) for _ in range(grid_size * grid_size))
        for candidate in self.candidates:  # independent initial weights, as separate layers would have
            candidate.apply(_reset_parameters)

    def forward(self, *args: Tensor):
        corners, weights = ops.grid_corners(self.coordinates, self.grid_size)
        outputs = [self.candidates[c](*args) if w else None for c, w in zip(corners, weights)]
        used = [(o, w) for o, w in zip(outputs, weights) if o is not None]
        if isinstance(used[0][0], tuple):
            return tuple(_blend([(o[i], w) for o, w in used]) for i in range(len(used[0][0])))
        return _blend(used)


def _blend(outputs: list[tuple[Tensor, float]]) -> Tensor:
    total = outputs[0][0] * outputs[0][1]
    for output, weight in outputs[1:]:
        total = total + output * weight
    return total


def _reset_parameters(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _blocks(model: nn.Module) -> nn.ModuleList:
    encoder = getattr(model, "encoder", None)
    blocks = getattr(encoder, "blocks", None) if encoder is not None else getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise ValueError(f"{type(model).__name__} has no layer blocks to turn into a grid supernet "
                         f"(expected .encoder.blocks or .blocks): the ADT supernet needs a Transformer backbone")
    return blocks


def to_grid_supernet(model: nn.Module, grid_size: int) -> nn.Module:
    """Replaces each block of ``model`` by an M x M grid of it (in place) and returns ``model``."""
    blocks = _blocks(model)
    causal = bool(getattr(model, "causal", True))
    for index, block in enumerate(blocks):
        if isinstance(block, TransformerBlock):
            blocks[index] = FusedTransformerGridBlock(block, grid_size, causal)
        else:
            blocks[index] = CopiedGridBlock(block, grid_size)
    return model


def grid_blocks(model: nn.Module) -> list[GridBlock]:
    found = [block for block in _blocks(model) if isinstance(block, GridBlock)]
    if not found:
        raise ValueError(f"{type(model).__name__} is not a grid supernet: call to_grid_supernet first")
    return found


def set_coordinates(model: nn.Module, coordinates: Sequence[Sequence[float]]) -> None:
    """One (axis-0, axis-1) pair per layer, in layer order."""
    blocks = grid_blocks(model)
    if len(coordinates) != len(blocks):
        raise ValueError(f"the supernet has {len(blocks)} layers, got coordinates for {len(coordinates)}")
    for block, pair in zip(blocks, coordinates):
        block.set_coordinates(pair)

