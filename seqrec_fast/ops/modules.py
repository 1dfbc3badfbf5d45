"""nn.Modules over the fused operators: the layers the backbones and supernets are built from."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import functional as ops

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def _init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int) -> None:
    """nn.Linear's default initialisation, applied to any stack of weight matrices."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    nn.init.uniform_(weight, -bound, bound)  # == kaiming_uniform_(a=sqrt(5)) for a fan_in
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)



class Dropout(nn.Module):
    """``nn.Dropout`` through the native one-pass op (:func:`seqrec_fast.ops.dropout`): on CPU,
    torch's Bernoulli sampling dominates a small recommender's training step, and the native
    mask is hashed from a seed instead (nothing stored for the backward)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: Dropout,
              causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v with ``mask`` (True = attend) or ``causal``, and ``dropout`` on
    the probabilities in training. SDPA when nothing is dropped; otherwise the probabilities are
    formed here, since SDPA's own dropout draws torch's Bernoulli masks (the slow part on CPU)."""
    if not (dropout.training and dropout.p > 0):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is None and causal:
        length = q.shape[-2]
        mask = torch.ones(length, k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return dropout(torch.softmax(scores, dim=-1)) @ v

class CausalConv1d(nn.Module):
    """Dilated causal convolution over channels-last sequences [B, L, C] (NextItNet, TCN).

    Initialised as NextItNet's reference: PyTorch's default weight init for a convolution, and
    zero biases, so a block starts without an offset."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__()
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.causal_conv1d(x, self.weight, self.bias, self.dilation)

    def extra_repr(self) -> str:
        out_c, in_c, k = self.weight.shape
        return f"{in_c}, {out_c}, kernel_size={k}, dilation={self.dilation}, bias={self.bias is not None}"


class SlicedLinear(nn.Module):
    """A linear layer whose used width is chosen per call, or per row (CANet routes, EASRec widths)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        _init_linear_(self.weight, self.bias, in_features)

    def forward(
        self,
        x: torch.Tensor,
        in_features: int | torch.Tensor | None = None,
        out_features: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        out_max, in_max = self.weight.shape
        return ops.sliced_linear(
            x,
            self.weight,
            self.bias,
            in_max if in_features is None else in_features,
            out_max if out_features is None else out_features,
        )


class LinearMultiheadAttention(nn.Module):
    """Multi-head self-attention with the EASRec/LinRec linear attention (O(L d^2))."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"LinearMultiheadAttention: d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.causal = causal
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        h = ops.linear_attention(q, k, v, key_padding_mask, self.causal)
        return self.out(h.transpose(1, 2).reshape(batch, length, d_model))


class GridLinear(nn.Module):
    """An M x M grid of candidate linear layers, run at continuous coords (ADT supernet)."""

    def __init__(self, in_features: int, out_features: int, grid_size: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(grid_size, grid_size, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(grid_size, grid_size, out_features)) if bias else None
        _init_linear_(self.weight, self.bias, in_features)

    def forward(
        self, x: torch.Tensor, coords: torch.Tensor | Sequence[float], blend: bool = True, per_corner: bool = False
    ) -> torch.Tensor:
        return ops.grid_linear(x, self.weight, self.bias, coords, blend, per_corner=per_corner)


class GridLayerNorm(nn.Module):
    """An M x M grid of LayerNorms; applies the 4 corners' affine maps to shared or per-corner x."""

    def __init__(self, d_model: int, grid_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(grid_size * grid_size, d_model))
        self.bias = nn.Parameter(torch.zeros(grid_size * grid_size, d_model))

    def forward(self, x: torch.Tensor, corners: torch.Tensor, per_corner: bool) -> torch.Tensor:
        """x [..., d] (shared) or [4, ..., d] (``per_corner``); ``corners`` the 4 flat candidate
        indices of :func:`grid_corners`. Returns [4, ..., d]."""
        normed = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        lead_dims = normed.dim() - (2 if per_corner else 1)
        view = (4,) + (1,) * lead_dims + (-1,)
        gamma = self.weight.index_select(0, corners).view(view)
        beta = self.bias.index_select(0, corners).view(view)
        return torch.addcmul(beta, normed, gamma)


class GridTransformerLayer(nn.Module):
    """The ADT supernet layer: a Transformer layer per grid point, run at continuous coords.

    The 4 candidates around ``coords`` run batched (every linear map through one grid_linear
    call, attention over a [4 B] batch) and their outputs are blended bilinearly (ADT, Eq. 20).
    With ``norm_first`` (pre-LN) the final linear map blends inside the kernel; post-LN layers
    (SASRec's original form) blend after the last LayerNorm.

    Dropout as in ``nn.TransformerEncoderLayer`` by default: ``dropout`` on the attention
    probabilities, the residual branches and the feed-forward hidden layer. ``attn_dropout``
    sets the first apart and ``inner_dropout=False`` drops the last, as the backbones' blocks
    (``models.layers.TransformerBlock``) have it.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        grid_size: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        norm_first: bool = False,
        causal: bool = True,
        layer_norm_eps: float = 1e-5,
        attn_dropout: float | None = None,
        inner_dropout: bool = True,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"GridTransformerLayer: d_model={d_model} is not divisible by n_heads={n_heads}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"GridTransformerLayer: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.grid_size = grid_size
        self.n_heads = n_heads
        self.causal = causal
        self.norm_first = norm_first
        self.dropout = Dropout(dropout)
        self.attn_dropout = Dropout(dropout if attn_dropout is None else attn_dropout)
        self.inner_dropout = Dropout(dropout if inner_dropout else 0.0)
        self.activation = _ACTIVATIONS[activation]
        self.qkv = GridLinear(d_model, 3 * d_model, grid_size)
        self.attn_out = GridLinear(d_model, d_model, grid_size)
        self.ff_in = GridLinear(d_model, d_ff, grid_size)
        self.ff_out = GridLinear(d_ff, d_model, grid_size)
        self.norm_attn = GridLayerNorm(d_model, grid_size, layer_norm_eps)
        self.norm_ff = GridLayerNorm(d_model, grid_size, layer_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        coords: torch.Tensor | Sequence[float],
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, L, d] -> [B, L, d]. Masking: ``key_padding_mask`` [B, L] is True at padding (the
        layer adds the causal part), or ``attn_mask`` [B, 1, L, L] is True where a query may see a
        key (the backbones' ``attention_mask``), not both."""
        if key_padding_mask is not None and attn_mask is not None:
            raise ValueError("GridTransformerLayer: pass key_padding_mask or attn_mask, not both")
        indices, weights = ops.grid_corners(coords, self.grid_size)
        corners = torch.tensor(indices, device=x.device)
        blend = torch.tensor(weights, dtype=x.dtype, device=x.device)
        coords_t = ops.as_coords(coords)
        if self.norm_first:
            h = self.norm_attn(x, corners, per_corner=False)
            a = x + self.dropout(self._attention(h, coords_t, key_padding_mask, attn_mask, per_corner=True))
            f = self._feed_forward_hidden(self.norm_ff(a, corners, per_corner=True), coords_t)
            return ops.mix(a, blend) + self.dropout(self.ff_out(f, coords_t, blend=True, per_corner=True))
        attended = self._attention(x, coords_t, key_padding_mask, attn_mask, per_corner=False)
        a = self.norm_attn(x + self.dropout(attended), corners, per_corner=True)
        f = self._feed_forward_hidden(a, coords_t)
        out = a + self.dropout(self.ff_out(f, coords_t, blend=False, per_corner=True))
        return ops.mix(self.norm_ff(out, corners, per_corner=True), blend)

    def _attention(
        self,
        x: torch.Tensor,
        coords: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        per_corner: bool,
    ) -> torch.Tensor:
        batch, length, d_model = x.shape[-3:]
        qkv = self.qkv(x, coords, blend=False, per_corner=per_corner)  # [4, B, L, 3d]
        q, k, v = qkv.view(4 * batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if attn_mask is not None:
            mask = attn_mask.repeat(4, 1, 1, 1)  # the 4 corners share the batch's mask
        else:
            mask = _attention_mask(key_padding_mask, length, self.causal, x.device)
        h = attention(q, k, v, mask, self.attn_dropout, causal=self.causal)
        h = h.transpose(1, 2).reshape(4, batch, length, d_model)
        return self.attn_out(h, coords, blend=False, per_corner=True)

    def _feed_forward_hidden(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.inner_dropout(self.activation(self.ff_in(x, coords, blend=False, per_corner=True)))


def attention_mask(valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean [B, 1, L, L] mask, True where query i may attend to key j.

    Padded keys are excluded. Each query may always see itself, so rows of padded queries are
    never empty (an all-masked softmax would give NaN); their outputs are ignored downstream."""
    length = valid.shape[1]
    allowed = valid[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=valid.device)


def _attention_mask(
    key_padding_mask: torch.Tensor | None, length: int, causal: bool, device: torch.device
) -> torch.Tensor | None:
    """:func:`attention_mask` for the 4 corners' [4 B] batch; None when SDPA's own
    ``is_causal`` (or nothing) says it all."""
    if key_padding_mask is None:
        return None
    return attention_mask(~key_padding_mask, causal).repeat(4, 1, 1, 1)
