"""The public operators: native kernels where the library has them, the references otherwise.

Each op checks one cached flag per device type and calls ``torch.ops.seqrec_fast.<op>``, whose
autograd, argument checks and kernels all live in C++; nothing else runs in Python on the fast
path. The first call on a device type loads (and if needed builds) the library; when it is
disabled (``SEQREC_FAST_NO_EXT=1``) or fails to build, the pure-PyTorch references of
:mod:`seqrec_fast.ops.reference` serve instead, after one warning from :func:`load`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from . import reference
from .build import load

NATIVE_OPS = ("dropout", "grid_linear", "mix", "causal_conv1d", "linear_attention", "sliced_linear", "sliced_linear_routed")

_native_by_device: dict[str, bool] = {}


def _resolve_native(device_type: str) -> bool:
    status = load()
    native = status.has_kernels_for(device_type) and all(
        hasattr(torch.ops.seqrec_fast, name) for name in NATIVE_OPS
    )
    if native:
        from . import fake  # noqa: F401  (registers the shape functions torch.compile needs)
    _native_by_device[device_type] = native
    return native


def native_available(device_type: str) -> bool:
    """Whether the ops run native kernels for tensors on ``device_type`` ("cpu", "cuda")."""
    cached = _native_by_device.get(device_type)
    return _resolve_native(device_type) if cached is None else cached


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Inside, every op runs its pure-PyTorch reference on every device: a graph traced or
    exported there holds torch's own operators only, and so loads where this package is not
    installed."""
    saved = dict(_native_by_device)
    _native_by_device.update(cpu=False, cuda=False)
    try:
        yield
    finally:
        _native_by_device.clear()
        _native_by_device.update(saved)


def as_coords(coords: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Grid coords as the float64 CPU tensor the native op reads (convert once, reuse per layer)."""
    if isinstance(coords, torch.Tensor):
        return coords
    return torch.tensor(coords, dtype=torch.float64)


def grid_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    coords: torch.Tensor | Sequence[float],
    blend: bool = True,
    *,
    per_corner: bool = False,
) -> torch.Tensor:
    """The linear layers of the 4 ADT grid candidates around ``coords``, run in one pass.

    weight [M, M, out, in] and bias [M, M, out] (or None) stack one candidate per grid point;
    candidate (i, j) sits at (i/(M-1), j/(M-1)) and ``coords`` (2 floats in [0, 1], the first
    along axis 0; keep a tensor on the CPU, it is read on the host) select the 4 around them,
    weighted bilinearly (:func:`grid_corners`). ``x`` is [..., in], shared by the corners, or
    [4, ..., in] with ``per_corner=True`` (corner order of :func:`grid_corners`).

    ``blend=True`` returns the bilinear blend [..., out] without materialising the 4 outputs;
    ``blend=False`` returns them, [4, ..., out]. Gradients reach the 4 selected candidates only;
    ``coords`` get none (the searches move them by evolution, not by gradient).
    """
    if native_available(x.device.type):
        return torch.ops.seqrec_fast.grid_linear(x, weight, bias, as_coords(coords), blend, per_corner)
    return reference.grid_linear(x, weight, bias, coords, blend, per_corner=per_corner)


def mix(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[k] h[k] for h [K, ...] and w [K]: the DARTS-style mixed operation (AdaRec, EASRec)."""
    if native_available(h.device.type):
        return torch.ops.seqrec_fast.mix(h, w)
    return reference.mix(h, w)


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1
) -> torch.Tensor:
    """Dilated causal convolution, channels-last: x [B, L, C_in], weight [C_out, C_in, K].

    y[t] = sum_j weight[:, :, j] x[t - (K-1-j) dilation] (+ bias), with zeros before the start,
    so y[t] never sees x after t. Returns [B, L, C_out].
    """
    if native_available(x.device.type):
        return torch.ops.seqrec_fast.causal_conv1d(x, weight, bias, dilation)
    return reference.causal_conv1d(x, weight, bias, dilation)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = True,
    scale: float | None = None,
) -> torch.Tensor:
    """Linear attention with phi(x) = elu(x) / ||elu(x)||_2 per token (EASRec / LinRec).

    q, k [B, H, L, D], v [B, H, L, Dv]; out_t = scale phi(q_t) sum_s phi(k_s)^T v_s over the
    unpadded keys s (s <= t when ``causal``). ``key_padding_mask`` [B, L] is True at padding;
    ``scale`` defaults to 1/sqrt(D). O(L D Dv) time and O(L (D + Dv)) memory.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if native_available(q.device.type):
        return torch.ops.seqrec_fast.linear_attention(q, k, v, key_padding_mask, causal, scale)
    return reference.linear_attention(q, k, v, key_padding_mask, causal, scale)


def sliced_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_features: int | torch.Tensor,
    out_features: int | torch.Tensor,
) -> torch.Tensor:
    """Weight-sliced linear: row n is x[n, :in_n] weight[:out_n, :in_n]^T + bias[:out_n].

    x [N, in_max], weight [out_max, in_max]; columns >= out_n of the output are zero. Widths are
    ints (one for the batch) or int tensors [N] (per-sample routes, CANet); rows sharing a route
    run as one GEMM, so time falls with the FLOPs saved, and gradients reach only used slices.
    """
    if native_available(x.device.type):
        if isinstance(in_features, torch.Tensor) or isinstance(out_features, torch.Tensor):
            rows = x.shape[0]
            in_t = torch.as_tensor(in_features, device=x.device).expand(rows)
            out_t = torch.as_tensor(out_features, device=x.device).expand(rows)
            return torch.ops.seqrec_fast.sliced_linear_routed(x, weight, bias, in_t, out_t)
        return torch.ops.seqrec_fast.sliced_linear(x, weight, bias, in_features, out_features)
    return reference.sliced_linear(x, weight, bias, in_features, out_features)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout (``F.dropout``'s semantics) in one pass, its mask hashed from a seed that
    is drawn from torch's default generator: no mask is stored for the backward, and the result
    follows ``torch.manual_seed`` and the saved RNG state like any torch random op."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    seed = torch.randint(0, 2**62, (), dtype=torch.int64)
    if native_available(x.device.type):
        return torch.ops.seqrec_fast.dropout(x, p, seed)
    return reference.dropout(x, p, int(seed))


grid_corners = reference.grid_corners
