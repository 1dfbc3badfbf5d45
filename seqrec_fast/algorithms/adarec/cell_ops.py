"""The ten candidate ops of an AdaRec edge, as modules over [B, L, C] sequences, and their cost.

Every op is causal and keeps padding inert: its input is zero at padded positions and before the
sequence start alike (the cell zeroes padding after every node), convolutions pad with zeros on
the left (``causal_conv1d``), pooling reads positions t-2..t with the same zeros, so adding left
padding never changes a real position's output. Convolutions and pooling apply ReLU, the op and a
per-position LayerNorm (the authors' BatchNorm over time would read future positions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...nas.cost import Cost, layer_norm
from ...ops import CausalConv1d
from .space import CONVOLUTIONS, OPS, POOL_WINDOW


class ConvOp(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(torch.relu(x)))


class PoolOp(nn.Module):
    """Max or mean over the current and the previous POOL_WINDOW - 1 positions."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.kind = kind
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(torch.relu(x).transpose(1, 2), (POOL_WINDOW - 1, 0))
        pool = F.max_pool1d if self.kind == "max" else F.avg_pool1d
        return self.norm(pool(padded, POOL_WINDOW, stride=1).transpose(1, 2))


class Skip(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


_CONVOLUTIONS = {name: (kernel, dilation) for name, kernel, dilation in CONVOLUTIONS}


def build_op(name: str, channels: int) -> nn.Module:
    if name in _CONVOLUTIONS:
        return ConvOp(channels, *_CONVOLUTIONS[name])
    if name in ("max_pool3", "avg_pool3"):
        return PoolOp(channels, name[:3])
    if name == "skip":
        return Skip()
    if name == "zero":
        return Zero()
    raise ValueError(f"unknown AdaRec op {name!r}; valid: {', '.join(OPS)}")


def op_cost(name: str, channels: int, length: int) -> Cost:
    """Parameters and multiply-adds of one op over ``length`` positions (pooling, skip and zero
    multiply nothing; a LayerNorm's parameters count)."""
    if name in _CONVOLUTIONS:
        kernel, _ = _CONVOLUTIONS[name]
        return Cost(kernel * channels * channels + channels, length * kernel * channels * channels) + layer_norm(channels)
    if name in ("max_pool3", "avg_pool3"):
        return layer_norm(channels)
    if name in ("skip", "zero"):
        return Cost(0, 0)
    raise ValueError(f"unknown AdaRec op {name!r}; valid: {', '.join(OPS)}")


def normalised_op_costs(channels: int, length: int) -> list[float]:
    """Each op's parameters over the largest op's plus its multiply-adds over the largest op's,
    in OPS order: the per-op cost the search's L_cost weighs (Eq. 14)."""
    costs = [op_cost(name, channels, length) for name in OPS]
    most_params = max(c.params for c in costs)
    most_macs = max(c.multiply_adds for c in costs)
    return [c.params / most_params + c.multiply_adds / most_macs for c in costs]
