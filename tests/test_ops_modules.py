"""The nn.Modules over the fused ops, above all the ADT supernet layer (paper 000, Eqs. 18-20)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seqrec_fast.ops as ops


def _candidate_layer(layer: ops.GridTransformerLayer, i: int, j: int, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grid candidate (i, j) of ``layer`` run as a plain Transformer layer (no grid code)."""
    flat = i * layer.grid_size + j
    weight = lambda lin: (lin.weight[i, j], lin.bias[i, j])  # noqa: E731
    norm = lambda n, h: F.layer_norm(h, h.shape[-1:], n.weight[flat], n.bias[flat], n.eps)  # noqa: E731

    def attention(h):
        batch, length, d = h.shape
        q, k, v = F.linear(h, *weight(layer.qkv)).view(batch, length, 3, layer.n_heads, -1).permute(2, 0, 3, 1, 4)
        allowed = torch.ones(length, length, dtype=torch.bool).tril() & ~mask[:, None, None, :]
        allowed |= torch.eye(length, dtype=torch.bool)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return F.linear(out.transpose(1, 2).reshape(batch, length, d), *weight(layer.attn_out))

    feed_forward = lambda h: F.linear(F.gelu(F.linear(h, *weight(layer.ff_in))), *weight(layer.ff_out))  # noqa: E731
    if layer.norm_first:
        a = x + attention(norm(layer.norm_attn, x))
        return a + feed_forward(norm(layer.norm_ff, a))
    a = norm(layer.norm_attn, x + attention(x))
    return norm(layer.norm_ff, a + feed_forward(a))


def _layer(norm_first: bool, grid: int = 3) -> ops.GridTransformerLayer:
    torch.manual_seed(0)
    layer = ops.GridTransformerLayer(d_model=6, n_heads=2, d_ff=10, grid_size=grid, norm_first=norm_first).eval()
    with torch.no_grad():  # distinct LayerNorm affines per candidate, so a mix-up would show
        for norm in (layer.norm_attn, layer.norm_ff):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return layer


def _inputs():
    torch.manual_seed(1)
    x = torch.randn(3, 7, 6)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[0, :3] = True  # left padding
    mask[2, :] = True  # an all-padding row
    return x, mask


@pytest.mark.parametrize("norm_first", [False, True])
def test_grid_layer_at_a_grid_point_is_that_candidate(norm_first):
    layer = _layer(norm_first)
    x, mask = _inputs()
    with torch.no_grad():
        got = layer(x, (0.5, 1.0), mask)  # grid point (1, 2) of a 3 x 3 grid
        want = _candidate_layer(layer, 1, 2, x, mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_grid_layer_blends_the_four_candidates_bilinearly(norm_first):
    layer = _layer(norm_first)
    x, mask = _inputs()
    coords = (0.3, 0.85)  # u = 0.6 -> rows 0, 1 (s = .6); v = 1.7 -> columns 1, 2 (t = .7)
    s, t = 0.6, 0.7
    with torch.no_grad():
        got = layer(x, coords, mask)
        corners = [_candidate_layer(layer, i, j, x, mask) for i, j in [(0, 1), (0, 2), (1, 1), (1, 2)]]
    want = sum(w * h for w, h in zip([(1 - s) * (1 - t), (1 - s) * t, s * (1 - t), s * t], corners))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_grid_layer_trains_only_the_selected_candidates():
    layer = _layer(norm_first=True).train()
    x, mask = _inputs()
    layer(x, (0.3, 0.85), mask)[~mask].sum().backward()
    used = sorted(int(i) for i in layer.ff_out.weight.grad.flatten(0, 1).flatten(1).abs().sum(1).nonzero())
    assert used == [1, 2, 4, 5]
    assert sorted(int(i) for i in layer.norm_attn.weight.grad.abs().sum(1).nonzero()) == used


def test_grid_layer_is_causal():
    layer = _layer(norm_first=False)
    x = torch.randn(2, 9, 6, requires_grad=True)
    y = layer(x, (0.4, 0.4), torch.zeros(2, 9, dtype=torch.bool))
    (grad,) = torch.autograd.grad(y[:, 4].sum(), x)
    assert grad[:, 5:].abs().max() == 0 and grad[:, :5].abs().max() > 0


def test_sliced_linear_module_defaults_to_full_width():
    torch.manual_seed(2)
    layer = ops.SlicedLinear(9, 5)
    x = torch.randn(4, 9)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
    narrow = layer(x, 4, 3)
    torch.testing.assert_close(narrow[:, :3], F.linear(x[:, :4], layer.weight[:3, :4], layer.bias[:3]))
    assert narrow[:, 3:].abs().max() == 0


def test_causal_conv1d_module_matches_conv1d_with_left_padding():
    torch.manual_seed(3)
    conv = ops.CausalConv1d(4, 6, kernel_size=3, dilation=2)
    x = torch.randn(2, 11, 4)
    want = F.conv1d(F.pad(x.transpose(1, 2), (4, 0)), conv.weight, conv.bias, dilation=2).transpose(1, 2)
    torch.testing.assert_close(conv(x), want, atol=1e-5, rtol=1e-4)


def test_linear_multihead_attention_ignores_padded_keys():
    torch.manual_seed(4)
    attn = ops.LinearMultiheadAttention(8, n_heads=2)
    x = torch.randn(2, 6, 8)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, :2] = True
    changed = x.clone()
    changed[:, :2] = torch.randn(2, 2, 8)  # new content at padded positions only
    torch.testing.assert_close(attn(x, mask)[:, 2:], attn(changed, mask)[:, 2:])


def test_modules_reject_bad_configuration():
    with pytest.raises(ValueError, match="d_model=6 is not divisible by n_heads=4"):
        ops.GridTransformerLayer(6, 4, 8, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.GridTransformerLayer(6, 2, 8, 3, activation="tanh")
