"""Argument checks of the operators' pure-PyTorch paths, with messages that say what was expected.

The native kernels make the same checks in C++ (TORCH_CHECK), so the fast path pays nothing here.
"""

from __future__ import annotations

import torch


def _fail(op: str, what: str) -> None:
    raise ValueError(f"{op}: {what}")


def check_grid_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, per_corner: bool) -> None:
    if weight.dim() != 4 or weight.shape[0] != weight.shape[1]:
        _fail("grid_linear", f"weight must be [M, M, out, in], got {tuple(weight.shape)}")
    m, _, out_f, in_f = weight.shape
    if bias is not None and tuple(bias.shape) != (m, m, out_f):
        _fail("grid_linear", f"bias must be [{m}, {m}, {out_f}], got {tuple(bias.shape)}")
    if x.dim() < 1 or x.shape[-1] != in_f:
        _fail("grid_linear", f"x must end in in_features={in_f}, got {tuple(x.shape)}")
    if per_corner and (x.dim() < 2 or x.shape[0] != 4):
        _fail("grid_linear", f"per-corner x must be [4, ..., {in_f}], got {tuple(x.shape)}")


def check_mix(h: torch.Tensor, w: torch.Tensor) -> None:
    if w.dim() != 1 or h.dim() < 1 or h.shape[0] != w.shape[0]:
        _fail("mix", f"expected h [K, ...] and w [K], got {tuple(h.shape)} and {tuple(w.shape)}")


def check_causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> None:
    if x.dim() != 3:
        _fail("causal_conv1d", f"x must be [B, L, C_in], got {tuple(x.shape)}")
    if weight.dim() != 3 or weight.shape[1] != x.shape[2] or weight.shape[2] < 1:
        _fail("causal_conv1d", f"weight must be [C_out, {x.shape[2]}, K>=1], got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        _fail("causal_conv1d", f"bias must be [{weight.shape[0]}], got {tuple(bias.shape)}")
    if dilation < 1:
        _fail("causal_conv1d", f"dilation must be >= 1, got {dilation}")


def check_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        _fail(
            "linear_attention",
            f"q, k must be [B, H, L, D] and v [B, H, L, Dv], got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}",
        )
    if key_padding_mask is not None:
        batch, _, length, _ = q.shape
        if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (batch, length):
            _fail(
                "linear_attention",
                f"key_padding_mask must be bool [{batch}, {length}] (True = padding), "
                f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}",
            )


def _check_widths(name: str, widths: int | torch.Tensor, limit: int, rows: int) -> None:
    if isinstance(widths, torch.Tensor):
        if widths.dtype.is_floating_point or widths.dim() != 1 or widths.shape[0] != rows:
            _fail("sliced_linear", f"{name} must be an int or an int tensor [{rows}], got {widths.dtype} {tuple(widths.shape)}")
        if rows and (int(widths.min()) < 0 or int(widths.max()) > limit):
            _fail("sliced_linear", f"{name} must lie in [0, {limit}], got values in [{int(widths.min())}, {int(widths.max())}]")
    elif not 0 <= widths <= limit:
        _fail("sliced_linear", f"{name} must lie in [0, {limit}], got {widths}")


def check_sliced_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_features: int | torch.Tensor,
    out_features: int | torch.Tensor,
) -> None:
    if weight.dim() != 2 or x.dim() != 2 or x.shape[1] != weight.shape[1]:
        _fail("sliced_linear", f"expected x [N, in_max] and weight [out_max, in_max], got {tuple(x.shape)} and {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        _fail("sliced_linear", f"bias must be [{weight.shape[0]}], got {tuple(bias.shape)}")
    _check_widths("in_features", in_features, weight.shape[1], x.shape[0])
    _check_widths("out_features", out_features, weight.shape[0], x.shape[0])
