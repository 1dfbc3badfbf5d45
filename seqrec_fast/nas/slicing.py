"""Weight slicing: a layer of the widest model run at a prefix of its widths, so that a narrower
candidate multiplies less (EASRec's widths, CANet's routes).

    sliced(layer, x, out)    a SlicedLinear on the first x.shape[-1] inputs, its first ``out``
                             outputs, through ``ops.sliced_linear``
    sliced_norm(norm, x)     a LayerNorm over the first x.shape[-1] features, with that prefix of
                             its weight and bias

Activations carry their own width (the last dimension); the weights stay the widest model's."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import SlicedLinear


def sliced(layer: SlicedLinear, x: Tensor, out: int) -> Tensor:
    """``layer`` on the first x.shape[-1] input features, its first ``out`` outputs: [..., out]."""
    out_max, in_max = layer.weight.shape
    width = x.shape[-1]
    flat = x.reshape(-1, width)
    if width < in_max:
        flat = F.pad(flat, (0, in_max - width))
    y = layer(flat, width, out)
    if out < out_max:
        y = y[:, :out]
    return y.reshape(*x.shape[:-1], out)


def sliced_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """``norm`` over the first x.shape[-1] features, with that prefix of its weight and bias."""
    width = x.shape[-1]
    return F.layer_norm(x, (width,), norm.weight[:width], norm.bias[:width], norm.eps)
