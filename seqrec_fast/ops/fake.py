"""Shape functions ("fake" kernels) of the native ops, so torch.compile and meta tensors can
trace them; imported once the library is loaded. A gradient the backward op was not asked for
comes back empty, as the kernels return it."""

from __future__ import annotations

import torch

_CORNERS = 4


def _maybe(wanted: bool, like: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(like, memory_format=torch.contiguous_format) if wanted else like.new_empty(0)


@torch.library.register_fake("seqrec_fast::dropout")
def _dropout(x, p, seed):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("seqrec_fast::mix")
def _mix(h, w):
    return h.new_empty(h.shape[1:])


@torch.library.register_fake("seqrec_fast::mix_backward")
def _mix_backward(grad, h, w, output_mask):
    return _maybe(output_mask[0], h), _maybe(output_mask[1], w)


@torch.library.register_fake("seqrec_fast::causal_conv1d")
def _causal_conv1d(x, weight, bias, dilation):
    return x.new_empty(x.shape[0], x.shape[1], weight.shape[0])


@torch.library.register_fake("seqrec_fast::causal_conv1d_backward")
def _causal_conv1d_backward(grad, x, weight, dilation, output_mask):
    return _maybe(output_mask[0], x), _maybe(output_mask[1], weight), _maybe(output_mask[1], weight[:, 0, 0])


@torch.library.register_fake("seqrec_fast::linear_attention")
def _linear_attention(q, k, v, key_padding_mask, causal, scale):
    return v.new_empty(v.shape)


@torch.library.register_fake("seqrec_fast::linear_attention_backward")
def _linear_attention_backward(grad, q, k, v, key_padding_mask, causal, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


@torch.library.register_fake("seqrec_fast::grid_linear")
def _grid_linear(x, weight, bias, coords, blend, per_corner):
    lead = x.shape[1:-1] if per_corner else x.shape[:-1]
    corners = () if blend else (_CORNERS,)
    return x.new_empty(*corners, *lead, weight.shape[2])


@torch.library.register_fake("seqrec_fast::grid_linear_backward")
def _grid_linear_backward(grad, x, weight, coords, blend, per_corner, output_mask):
    return _maybe(output_mask[0], x), _maybe(output_mask[1], weight), _maybe(output_mask[1], weight[..., 0])


def _sliced_linear(x, weight, bias, in_features, out_features):
    return x.new_empty(x.shape[0], weight.shape[0])


def _sliced_linear_backward(grad, x, weight, in_features, out_features, output_mask):
    return _maybe(output_mask[0], x), _maybe(output_mask[1], weight), _maybe(output_mask[1], weight[:, 0])


@torch.library.register_fake("seqrec_fast::sliced_linear_routed_forward")
def _sliced_linear_routed_forward(x, weight, bias, in_features, out_features):
    # y, the row order, and the groups: a CPU [N, 4] (csrc/sliced_linear.cpp, groups_tensor)
    rows = x.shape[0]
    return (_sliced_linear(x, weight, bias, in_features, out_features), x.new_empty(rows, dtype=torch.int64),
            torch.empty(rows, 4, dtype=torch.int64, device="cpu"))


for _suffix in ("", "_routed"):
    torch.library.register_fake(f"seqrec_fast::sliced_linear{_suffix}")(_sliced_linear)
    torch.library.register_fake(f"seqrec_fast::sliced_linear{_suffix}_backward")(_sliced_linear_backward)
