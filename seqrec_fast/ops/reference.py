"""Pure-PyTorch references of the native operators.

Each function states the op's semantics in the plainest PyTorch that computes it; the tests
compare the native kernels against these (values and gradients), and the public ops in
:mod:`seqrec_fast.ops.functional` fall back to them when no native kernel is available.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .validation import (
    check_causal_conv1d,
    check_grid_linear,
    check_linear_attention,
    check_mix,
    check_sliced_linear,
)

GRID_CORNERS = 4


def autocast_inputs(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The native ops' autocast rule (csrc/autocast.cpp), for the references of the GEMM ops:
    inside an autocast region of the tensors' device, floating tensors on that device other than
    float64 are cast to the autocast dtype (F.linear's rule); outside one, nothing changes."""
    device = next(t for t in tensors if t is not None).device.type
    if not torch.amp.is_autocast_available(device) or not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(
        t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64 and t.device.type == device
        else t
        for t in tensors
    )


def grid_corners(coords: torch.Tensor | Sequence[float], grid_size: int) -> tuple[list[int], list[float]]:
    """The 4 grid candidates around ``coords`` and their bilinear weights (ADT, Eqs. 18-20).

    Candidate (i, j) of an M x M grid sits at (i / (M-1), j / (M-1)); ``coords`` are 2 floats in
    [0, 1], the first along axis 0. Returns flat candidate indices (i * M + j) and weights in the
    order (i0, j0), (i0, j0+1), (i0+1, j0), (i0+1, j0+1). At a grid point the weight of that
    candidate is 1. A 1 x 1 grid has the single candidate at every corner, weighted 1, 0, 0, 0.
    """
    values = coords.tolist() if isinstance(coords, torch.Tensor) else list(coords)
    if len(values) != 2:
        raise ValueError(f"grid coords: expected 2 floats, got {len(values)}")
    corners, fractions = [], []
    for axis, c in enumerate(values):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"grid coords[{axis}] = {c}: expected a value in [0, 1]")
        if grid_size == 1:
            corners.append((0, 0))
            fractions.append(0.0)
            continue
        u = c * (grid_size - 1)
        low = min(int(u), grid_size - 2)
        corners.append((low, low + 1))
        fractions.append(u - low)
    (i0, i1), (j0, j1) = corners
    s, t = fractions
    m = grid_size
    indices = [i0 * m + j0, i0 * m + j1, i1 * m + j0, i1 * m + j1]
    weights = [(1 - s) * (1 - t), (1 - s) * t, s * (1 - t), s * t]
    return indices, weights


def grid_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    coords: torch.Tensor | Sequence[float],
    blend: bool = True,
    *,
    per_corner: bool = False,
) -> torch.Tensor:
    """Linear layers of the 4 grid candidates around ``coords``, blended bilinearly or not.

    weight [M, M, out, in], bias [M, M, out] or None; x [..., in] shared by the corners, or
    [4, ..., in] with ``per_corner=True``. Returns [..., out] (``blend=True``) or [4, ..., out].
    """
    check_grid_linear(x, weight, bias, per_corner)
    x, weight, bias = autocast_inputs(x, weight, bias)
    indices, weights = grid_corners(coords, weight.shape[0])
    index = torch.tensor(indices, device=weight.device)
    w4 = weight.flatten(0, 1).index_select(0, index)  # [4, out, in]
    xs = x if per_corner else x.unsqueeze(0).expand(GRID_CORNERS, *x.shape)
    lead = xs.shape[1:-1]
    h = torch.bmm(xs.reshape(GRID_CORNERS, -1, xs.shape[-1]), w4.transpose(1, 2))
    if bias is not None:
        h = h + bias.flatten(0, 1).index_select(0, index).unsqueeze(1)
    h = h.reshape(GRID_CORNERS, *lead, weight.shape[2])
    if not blend:
        return h
    return mix(h, torch.tensor(weights, dtype=h.dtype, device=h.device))


def mix(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[k] * h[k]: h [K, ...], w [K] (DARTS-style mixed operations), in h's dtype.

    Elementwise products and a sum, which autocast leaves in h's dtype, as the native op runs."""
    check_mix(h, w)
    return (w.to(h.dtype).view(-1, *[1] * (h.dim() - 1)) * h).sum(0)


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1
) -> torch.Tensor:
    """y[t] = sum_j weight[:, :, j] x[t - (K-1-j) dilation] (+ bias); x [B, L, C_in] -> [B, L, C_out]."""
    check_causal_conv1d(x, weight, bias, dilation)
    x, weight, bias = autocast_inputs(x, weight, bias)
    pad = (weight.shape[-1] - 1) * dilation
    xt = F.pad(x.transpose(1, 2), (pad, 0))
    return F.conv1d(xt, weight, bias, dilation=dilation).transpose(1, 2)


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) scaled to unit L2 norm over the last dimension (EASRec / LinRec)."""
    return F.normalize(F.elu(x), dim=-1)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """out_t = scale phi(q_t) sum_{s (<= t), unpadded} phi(k_s)^T v_s; q, k, v [B, H, L, D].

    ``key_padding_mask`` [B, L] is True at padded positions (as in torch.nn.MultiheadAttention).
    The causal form is written as masked quadratic attention, the plainest correct statement.
    """
    check_linear_attention(q, k, v, key_padding_mask)
    q, k, v = autocast_inputs(q, k, v)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    pq, pk = feature_map(q), feature_map(k)
    if key_padding_mask is not None:
        pk = pk.masked_fill(key_padding_mask[:, None, :, None], 0.0)
    if causal:
        scores = torch.matmul(pq, pk.transpose(-1, -2)).tril()
        return scale * torch.matmul(scores, v)
    return scale * torch.matmul(pq, torch.matmul(pk.transpose(-1, -2), v))


def sliced_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_features: int | torch.Tensor,
    out_features: int | torch.Tensor,
) -> torch.Tensor:
    """Row n: x[n, :in_n] weight[:out_n, :in_n]^T + bias[:out_n], zero in columns >= out_n."""
    check_sliced_linear(x, weight, bias, in_features, out_features)
    x, weight, bias = autocast_inputs(x, weight, bias)
    out_max, in_max = weight.shape
    if not isinstance(in_features, torch.Tensor) and not isinstance(out_features, torch.Tensor):
        # One width for every row: multiply the slice alone, as the kernel does, so that a graph
        # run here (torch's FLOP counter, an export) does the work of the narrower layer.
        y = F.linear(x[:, :in_features], weight[:out_features, :in_features],
                     None if bias is None else bias[:out_features])
        return F.pad(y, (0, out_max - out_features))
    in_f = torch.as_tensor(in_features, device=x.device).reshape(-1, 1)
    out_f = torch.as_tensor(out_features, device=x.device).reshape(-1, 1)
    in_mask = torch.arange(in_max, device=x.device) < in_f
    out_mask = torch.arange(out_max, device=x.device) < out_f
    return F.linear(x * in_mask, weight, bias) * out_mask


# ---------------------------------------------------------------------------------- dropout
# The mask of the native dropout, bit for bit (csrc/dropout_bits.h), in int64 arithmetic that
# never overflows: 32-bit values, products split into 16-bit halves.
_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def dropout_keep_mask(numel: int, p: float, seed: int, device=None) -> torch.Tensor:
    """The keep-mask [numel] of ``dropout(x, p, seed)`` for a contiguous x of numel elements."""
    seed &= (1 << 64) - 1
    index = torch.arange(numel, dtype=torch.int64, device=device)
    key = (seed >> 32) ^ _mul32(index >> 32, 0x9E3779B9)
    bits = _mix32(((_mix32((index & _MASK32) ^ (seed & _MASK32)) + key) & _MASK32))
    scaled = round((1.0 - p) * 4294967296.0)
    threshold = 0xFFFFFFFF if scaled >= 0xFFFFFFFF else scaled
    return bits < threshold


def dropout(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """Inverted dropout with the native op's mask: x * keep / (1 - p)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = dropout_keep_mask(x.numel(), p, seed, x.device).view(x.shape)
    return torch.where(keep, x * (1.0 / (1.0 - p)), torch.zeros((), dtype=x.dtype, device=x.device))
