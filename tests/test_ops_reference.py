"""The pure-PyTorch references against the issue's formulas, written out as plain loops.

The native kernels are tested against the references (test_ops_native.py); these tests pin the
references themselves to the definitions.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqrec_fast.ops import reference


@pytest.mark.parametrize(
    ("coords", "grid", "indices", "weights"),
    [
        ((0.0, 0.0), 6, [0, 1, 6, 7], [1.0, 0.0, 0.0, 0.0]),
        ((1.0, 1.0), 6, [28, 29, 34, 35], [0.0, 0.0, 0.0, 1.0]),
        ((0.2, 0.4), 6, [8, 9, 14, 15], [1.0, 0.0, 0.0, 0.0]),  # grid point (1, 2)
        ((0.5, 0.1), 6, [12, 13, 18, 19], [0.25, 0.25, 0.25, 0.25]),
        ((0.3, 0.0), 2, [0, 1, 2, 3], [0.7, 0.0, 0.3, 0.0]),
        ((0.6, 0.9), 1, [0, 0, 0, 0], [1.0, 0.0, 0.0, 0.0]),
    ],
)
def test_grid_corners(coords, grid, indices, weights):
    got_indices, got_weights = reference.grid_corners(coords, grid)
    assert got_indices == indices
    assert got_weights == pytest.approx(weights, abs=1e-12)


def test_grid_corners_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"coords\[1\] = 1.5"):
        reference.grid_corners((0.5, 1.5), 6)


@pytest.mark.parametrize("per_corner", [False, True])
def test_grid_linear_is_the_bilinear_blend_of_candidate_layers(per_corner):
    torch.manual_seed(0)
    m, d_in, d_out = 4, 5, 7
    weight = torch.randn(m, m, d_out, d_in, dtype=torch.float64)
    bias = torch.randn(m, m, d_out, dtype=torch.float64)
    x = torch.randn(4, 3, 2, d_in, dtype=torch.float64) if per_corner else torch.randn(3, 2, d_in, dtype=torch.float64)
    coords = (0.45, 0.8)
    # Eqs. 18-20 by hand: u = 0.45 * 3 = 1.35 -> rows 1, 2 (s = .35); v = 2.4 -> columns 2, 3 (t = .4).
    corners = [(1, 2), (1, 3), (2, 2), (2, 3)]
    s, t = 0.35, 0.4
    blend = [(1 - s) * (1 - t), (1 - s) * t, s * (1 - t), s * t]
    outs = [F.linear(x[c] if per_corner else x, weight[i, j], bias[i, j]) for c, (i, j) in enumerate(corners)]
    expected = sum(w * h for w, h in zip(blend, outs))
    got = reference.grid_linear(x, weight, bias, coords, per_corner=per_corner)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(reference.grid_linear(x, weight, bias, coords, blend=False, per_corner=per_corner), torch.stack(outs))


def test_causal_conv1d_matches_the_definition():
    torch.manual_seed(0)
    b, length, c_in, c_out, k, dilation = 2, 9, 3, 4, 3, 2
    x = torch.randn(b, length, c_in, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, k, dtype=torch.float64)
    bias = torch.randn(c_out, dtype=torch.float64)
    expected = bias.expand(b, length, c_out).clone()
    for t in range(length):
        for j in range(k):
            src = t - (k - 1 - j) * dilation
            if src >= 0:
                expected[:, t] += x[:, src] @ weight[:, :, j].T
    torch.testing.assert_close(reference.causal_conv1d(x, weight, bias, dilation), expected)


@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention_matches_the_definition(causal):
    torch.manual_seed(0)
    b, h, length, d, dv = 2, 2, 6, 3, 5
    q, k = (torch.randn(b, h, length, d, dtype=torch.float64) for _ in range(2))
    v = torch.randn(b, h, length, dv, dtype=torch.float64)
    mask = torch.zeros(b, length, dtype=torch.bool)
    mask[0, :2] = True
    phi = lambda z: F.elu(z) / F.elu(z).norm(dim=-1, keepdim=True)  # noqa: E731
    expected = torch.zeros(b, h, length, dv, dtype=torch.float64)
    for t in range(length):
        for s in range(length if not causal else t + 1):
            keep = (~mask[:, s]).to(torch.float64)[:, None, None, None]
            state = phi(k[:, :, s]).unsqueeze(-1) * v[:, :, s].unsqueeze(-2) * keep  # [b, h, d, dv]
            expected[:, :, t] += (phi(q[:, :, t]).unsqueeze(-1) * state).sum(-2)
    got = reference.linear_attention(q, k, v, mask, causal=causal, scale=0.7)
    torch.testing.assert_close(got, 0.7 * expected)


def test_sliced_linear_matches_the_definition():
    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64)
    weight = torch.randn(5, 6, dtype=torch.float64)
    bias = torch.randn(5, dtype=torch.float64)
    in_f, out_f = [6, 3, 0, 4], [5, 2, 3, 0]
    got = reference.sliced_linear(x, weight, bias, torch.tensor(in_f), torch.tensor(out_f))
    for n in range(4):
        row = torch.zeros(5, dtype=torch.float64)
        row[: out_f[n]] = x[n, : in_f[n]] @ weight[: out_f[n], : in_f[n]].T + bias[: out_f[n]]
        torch.testing.assert_close(got[n], row)


def test_sliced_linear_at_one_width_multiplies_the_slice_alone():
    from seqrec_fast.nas.cost import counted

    torch.manual_seed(0)
    x, weight, bias = torch.randn(4, 6), torch.randn(5, 6), torch.randn(5)
    got = reference.sliced_linear(x, weight, bias, 3, 2)
    torch.testing.assert_close(got, reference.sliced_linear(x, weight, bias, torch.full((4,), 3), torch.full((4,), 2)))
    assert not got[:, 2:].any()

    class Sliced(torch.nn.Module):
        def forward(self, rows):
            return reference.sliced_linear(rows, weight, bias, 3, 2)

    assert counted(Sliced(), x).multiply_adds == 4 * 3 * 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reference.causal_conv1d(torch.zeros(2, 3, 4), torch.zeros(5, 3, 2)), r"weight must be \[C_out, 4"),
        (lambda: reference.causal_conv1d(torch.zeros(2, 3, 4), torch.zeros(5, 4, 2), None, 0), "dilation must be >= 1"),
        (lambda: reference.sliced_linear(torch.zeros(2, 4), torch.zeros(3, 4), None, 5, 3), r"in_features must lie in \[0, 4\]"),
        (lambda: reference.mix(torch.zeros(3, 4), torch.zeros(2)), r"expected h \[K, ...\] and w \[K\]"),
        (
            lambda: reference.linear_attention(*(torch.zeros(1, 1, 3, 2),) * 3, torch.zeros(1, 3)),
            "key_padding_mask must be bool",
        ),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
