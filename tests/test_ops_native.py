"""The native operators against the pure-PyTorch references: values and gradients (fp32 on CPU,
float64 gradcheck, and on a GPU fp32/fp16/bf16), odd widths, lengths 1-200, all-padding rows,
non-contiguous inputs, dilations past the sequence, and torch.compile."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest
import torch

import seqrec_fast.ops as ops
from seqrec_fast.ops import reference

LENGTHS = [1, 3, 50, 199, 200]
LOW_PRECISION = [torch.float16, torch.bfloat16]


def _require_native(device: str) -> None:
    if not ops.native_available(device):
        pytest.skip(f"no native {device} kernels: {ops.load().to_dict()}")


@pytest.fixture(scope="module")
def cpu_native():
    _require_native("cpu")


@pytest.fixture(scope="module")
def cuda_native():
    _require_native("cuda")



def make_leaf(*shape: int, dtype=torch.float32, device="cpu", transpose: bool = False) -> torch.Tensor:
    """A random leaf that requires grad; with ``transpose`` it is a non-contiguous view of the
    same shape (the last two dims swapped in memory)."""
    if transpose and len(shape) >= 2:
        base = torch.randn(*shape[:-2], shape[-1], shape[-2], dtype=dtype, device=device).transpose(-1, -2)
    else:
        base = torch.randn(*shape, dtype=dtype, device=device)
    return base.detach().requires_grad_(True)


def grads_of(fn: Callable[..., torch.Tensor], inputs: Sequence, upstream: torch.Tensor | None = None):
    """fn(*inputs) and the gradients of <fn(*inputs), upstream> w.r.t. the inputs requiring grad."""
    out = fn(*inputs)
    if upstream is None:
        upstream = torch.randn_like(out)
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad(out, leaves, upstream, allow_unused=True)
    return out, grads, upstream


def assert_matches(
    native: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    inputs: Sequence,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Values and gradients of ``native`` equal those of ``reference`` on the same inputs."""
    out, grads, upstream = grads_of(native, inputs)
    ref_out, ref_grads, _ = grads_of(reference, inputs, upstream)
    torch.testing.assert_close(out, ref_out, atol=atol, rtol=rtol)
    for got, want in zip(grads, ref_grads):
        if want is None:
            assert got is None or not got.any()
            continue
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


def low_precision_matches(
    native: Callable[..., torch.Tensor],
    reference: Callable[..., torch.Tensor],
    inputs: Sequence,
    dtype: torch.dtype,
    slack: float = 4.0,
) -> None:
    """In fp16/bf16, ``native``'s error against the float64 reference is at most ``slack`` times
    the error of the reference run in the same low precision (plus one ulp-scale term)."""
    wide = [t.detach().double().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]
    narrow = [t.detach().to(dtype).requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]
    truth, truth_grads, upstream = grads_of(reference, wide)
    low, low_grads, _ = grads_of(reference, narrow, upstream.to(dtype))
    ours, our_grads, _ = grads_of(native, narrow, upstream.to(dtype))
    eps = torch.finfo(dtype).eps
    for name, got, base, want in [("output", ours, low, truth)] + [
        (f"grad {i}", g, b, w) for i, (g, b, w) in enumerate(zip(our_grads, low_grads, truth_grads))
    ]:
        if want is None:
            continue
        scale = want.abs().max().item() + 1e-30
        ours_err = (got.double() - want).abs().max().item()
        ref_err = (base.double() - want).abs().max().item()
        assert ours_err <= slack * ref_err + 2 * eps * scale, f"{name}: error {ours_err:.3g} vs low-precision reference {ref_err:.3g}"


# ---------------------------------------------------------------------------------------------
# Cases: (native op, reference, inputs) built on a device and dtype


def conv_case(length, *, dilation=2, k=3, c_in=5, c_out=7, batch=3, bias=True, noncontig=False, **kw):
    x = make_leaf(batch, length, c_in, transpose=noncontig, **kw)
    w = make_leaf(c_out, c_in, k, **kw)
    b = make_leaf(c_out, **kw) if bias else None
    return (
        lambda x, w, b: ops.causal_conv1d(x, w, b, dilation),
        lambda x, w, b: reference.causal_conv1d(x, w, b, dilation),
        [x, w, b],
    )


def padding_mask(batch, length, device="cpu"):
    """Left padding of varied lengths; row 1 is all padding."""
    lengths = torch.tensor([length, 0] + [max(1, length - 2 * i) for i in range(2, batch)])[:batch]
    positions = torch.arange(length)
    return (positions[None, :] < (length - lengths)[:, None]).to(device)


def attention_case(length, *, causal=True, masked=True, d=5, dv=7, batch=3, heads=2, noncontig=False, **kw):
    q, k = (make_leaf(batch, heads, length, d, transpose=noncontig, **kw) for _ in range(2))
    v = make_leaf(batch, heads, length, dv, **kw)
    mask = padding_mask(batch, length, kw.get("device", "cpu")) if masked else None
    return (
        lambda q, k, v: ops.linear_attention(q, k, v, mask, causal),
        lambda q, k, v: reference.linear_attention(q, k, v, mask, causal),
        [q, k, v],
    )


def grid_case(coords, *, grid=4, blend=True, per_corner=False, bias=True, d_in=5, d_out=7, noncontig=False, **kw):
    lead = (4, 3, 6) if per_corner else (3, 6)
    x = make_leaf(*lead, d_in, transpose=noncontig, **kw)
    w = make_leaf(grid, grid, d_out, d_in, **kw)
    b = make_leaf(grid, grid, d_out, **kw) if bias else None
    return (
        lambda x, w, b: ops.grid_linear(x, w, b, coords, blend, per_corner=per_corner),
        lambda x, w, b: reference.grid_linear(x, w, b, coords, blend, per_corner=per_corner),
        [x, w, b],
    )


def sliced_case(in_features, out_features, *, rows=37, in_max=13, out_max=11, bias=True, noncontig=False, **kw):
    x = make_leaf(rows, in_max, transpose=noncontig, **kw)
    w = make_leaf(out_max, in_max, **kw)
    b = make_leaf(out_max, **kw) if bias else None
    device = kw.get("device", "cpu")
    in_f = in_features.to(device) if isinstance(in_features, torch.Tensor) else in_features
    out_f = out_features.to(device) if isinstance(out_features, torch.Tensor) else out_features
    return (
        lambda x, w, b: ops.sliced_linear(x, w, b, in_f, out_f),
        lambda x, w, b: reference.sliced_linear(x, w, b, in_f, out_f),
        [x, w, b],
    )


def routes(rows=37, in_max=13, out_max=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    in_f = torch.randint(0, in_max + 1, (rows,), generator=gen)
    out_f = torch.randint(0, out_max + 1, (rows,), generator=gen)
    in_f[:3], out_f[:3] = in_max, out_max  # some full-width rows
    return in_f, out_f


def mix_case(k, *, noncontig=False, **kw):
    h = make_leaf(k, 3, 5, 7, transpose=noncontig, **kw)
    w = torch.softmax(torch.randn(k, **kw), 0).detach().requires_grad_(True)
    return ops.mix, reference.mix, [h, w]


# ---------------------------------------------------------------------------------------------
# CPU, fp32: values and gradients


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize(("k", "dilation"), [(3, 2), (2, 1), (5, 4), (1, 1)])
def test_causal_conv1d(cpu_native, length, k, dilation):
    torch.manual_seed(length * 10 + k)
    assert_matches(*conv_case(length, k=k, dilation=dilation))


@pytest.mark.parametrize("length", [1, 3, 50])
def test_causal_conv1d_dilation_at_least_length(cpu_native, length):
    torch.manual_seed(length)
    assert_matches(*conv_case(length, k=3, dilation=length))
    assert_matches(*conv_case(length, k=4, dilation=3 * length + 1, bias=False))


@pytest.mark.parametrize("dilation", [4, 70])
def test_causal_conv1d_wide_channels_and_long_look_back(cpu_native, dilation):
    # 800 rows of 67 -> 129 channels, and a look-back past a third of the sequence (dilation 70).
    torch.manual_seed(dilation)
    assert_matches(*conv_case(200, batch=4, c_in=67, c_out=129, dilation=dilation), atol=1e-4)


def test_causal_conv1d_noncontiguous(cpu_native):
    torch.manual_seed(1)
    assert_matches(*conv_case(50, noncontig=True))


def test_causal_conv1d_never_sees_the_future(cpu_native):
    torch.manual_seed(2)
    x = torch.randn(2, 20, 5, requires_grad=True)
    y = ops.causal_conv1d(x, torch.randn(7, 5, 3), torch.randn(7), 3)
    (grad,) = torch.autograd.grad(y[:, 9].sum(), x)
    assert grad[:, 10:].abs().max() == 0 and grad[:, 9].abs().max() > 0


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention(cpu_native, length, causal):
    torch.manual_seed(length)
    assert_matches(*attention_case(length, causal=causal))


@pytest.mark.parametrize("length", [1, 50, 200])
@pytest.mark.parametrize(("d", "dv"), [(16, 16), (17, 19), (33, 35)])
def test_linear_attention_both_causal_paths(cpu_native, length, d, dv):
    # The CPU runs the causal sums as step scans for d * dv <= 256, and up to 1024 when the
    # chunked GEMMs would take several chunks (length 200: 4), else as those GEMMs.
    torch.manual_seed(length + d)
    assert_matches(*attention_case(length, d=d, dv=dv), atol=1e-4)


@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention_unmasked_noncontiguous(cpu_native, causal):
    torch.manual_seed(3)
    assert_matches(*attention_case(50, causal=causal, masked=False, noncontig=True))


def test_linear_attention_all_padding_row_is_zero_and_gets_no_key_gradient(cpu_native):
    torch.manual_seed(4)
    native, _, (q, k, v) = attention_case(20, causal=False)
    out = native(q, k, v)
    assert out[1].abs().max() == 0  # row 1 is all padding: no key reaches any query
    out.sum().backward()
    assert k.grad[1].abs().max() == 0 and v.grad[1].abs().max() == 0


@pytest.mark.parametrize(
    ("coords", "grid"),
    [((0.37, 0.81), 4), ((0.5, 0.5), 3), ((1.0, 0.0), 4), ((0.0, 1.0), 6), ((0.6, 0.2), 1)],
)
@pytest.mark.parametrize(("blend", "per_corner"), [(True, False), (True, True), (False, False), (False, True)])
def test_grid_linear(cpu_native, coords, grid, blend, per_corner):
    torch.manual_seed(5)
    assert_matches(*grid_case(coords, grid=grid, blend=blend, per_corner=per_corner))


@pytest.mark.parametrize("per_corner", [False, True])
def test_grid_linear_without_bias_noncontiguous_tensor_coords(cpu_native, per_corner):
    torch.manual_seed(6)
    coords = torch.tensor([0.21, 0.64])
    assert_matches(*grid_case(coords, bias=False, per_corner=per_corner, noncontig=True))


def test_grid_linear_gradients_reach_only_the_four_corners(cpu_native):
    torch.manual_seed(7)
    native, _, (x, w, b) = grid_case((0.37, 0.81), grid=4)
    native(x, w, b).sum().backward()
    touched = sorted(int(i) for i in w.grad.flatten(2).abs().sum(-1).flatten().nonzero())
    assert touched == ops.grid_corners((0.37, 0.81), 4)[0] == [6, 7, 10, 11]
    assert sorted(int(i) for i in b.grad.abs().sum(-1).flatten().nonzero()) == touched


@pytest.mark.parametrize(
    ("in_features", "out_features"), [(13, 11), (5, 3), (0, 4), (7, 0), (13, 1), routes(), (routes()[0], 6), (4, routes()[1])]
)
def test_sliced_linear(cpu_native, in_features, out_features):
    torch.manual_seed(8)
    assert_matches(*sliced_case(in_features, out_features))


def test_sliced_linear_without_bias_noncontiguous(cpu_native):
    torch.manual_seed(9)
    assert_matches(*sliced_case(*routes(seed=1), bias=False, noncontig=True))


def test_sliced_linear_gradients_reach_only_used_slices(cpu_native):
    torch.manual_seed(10)
    native, _, (x, w, b) = sliced_case(torch.tensor([3, 5] * 5), torch.tensor([2, 4] * 5), rows=10)
    native(x, w, b).sum().backward()
    assert w.grad[4:].abs().max() == 0 and w.grad[:, 5:].abs().max() == 0 and w.grad[:4, :5].abs().min() > 0
    assert b.grad[4:].abs().max() == 0 and x.grad[:, 5:].abs().max() == 0


def test_sliced_linear_routed_plan_is_a_function_of_the_routes(cpu_native):
    # Two groups for 64 rows: the rows of the groups tensor after the plan are zeros, whatever
    # the allocator hands out (the tensor is an op output, compared by opcheck and torch.compile).
    x, w = torch.randn(64, 6), torch.randn(5, 6)
    in_f, out_f = torch.tensor([3, 6] * 32), torch.tensor([2, 5] * 32)
    for _ in range(3):
        torch.empty(64, 4, dtype=torch.int64).fill_(-7)  # leave garbage where the next tensor may go
        _, order, groups = torch.ops.seqrec_fast.sliced_linear_routed_forward(x, w, None, in_f, out_f)
        assert groups[:2].tolist() == [[0, 32, 3, 2], [32, 32, 6, 5]]
        assert not groups[2:].any()
        assert order.tolist() == list(range(0, 64, 2)) + list(range(1, 64, 2))  # a stable sort


@pytest.mark.parametrize("k", [1, 4, 6])  # the CPU forward sums up to 8 candidates in one pass
@pytest.mark.parametrize("noncontig", [False, True])
def test_mix(cpu_native, k, noncontig):
    torch.manual_seed(11)
    assert_matches(*mix_case(k, noncontig=noncontig))


def test_mix_large_enough_to_split_across_threads(cpu_native):
    torch.manual_seed(12)
    h = make_leaf(3, 40_001)
    w = torch.randn(3).requires_grad_(True)
    assert_matches(ops.mix, reference.mix, [h, w], atol=1e-4)
    # bfloat16 too: split across threads, summed in float.
    h16 = torch.randn(3, 40_001).to(torch.bfloat16)
    expected = reference.mix(h16.float(), w.detach()).to(torch.bfloat16)
    torch.testing.assert_close(ops.mix(h16, w.detach()), expected, rtol=1e-2, atol=1e-2)


def test_outputs_advised_onto_huge_pages_hold_the_right_values(cpu_native):
    # Outputs of 4 MB and more are advised onto 2 MB pages (op_utils.h, empty_output) over their
    # aligned interior; odd sizes leave a ragged head and tail outside it. Over 32 MB glibc maps
    # the block afresh, so the advised pages are the ones the kernel first writes.
    torch.manual_seed(14)
    h = make_leaf(4, 2_500_003)  # grad_h: 40 MB
    w = torch.randn(4).requires_grad_(True)
    assert_matches(ops.mix, reference.mix, [h, w], atol=1e-4, rtol=1e-3)  # grad_w: float sums of 2.5M terms
    x = torch.randn(3, 1_400_001)  # 16.8 MB
    y = ops.dropout(x, 0.25)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert 0.74 < kept.float().mean().item() < 0.76
    x4 = make_leaf(4, 1001, 37)  # grid_linear's per-corner output [4, 1001, 1031]: 16.5 MB
    weight, bias = torch.randn(3, 3, 1031, 37).requires_grad_(True), torch.randn(3, 3, 1031).requires_grad_(True)
    coords = torch.tensor([0.3, 0.8])
    assert_matches(lambda *a: ops.grid_linear(*a, blend=False), lambda *a: reference.grid_linear(*a, blend=False),
                   [x4, weight, bias, coords], atol=1e-4)


@pytest.mark.parametrize("k", [3, 8, 9, 17])  # one pass of 3 or 8 streams; 8 + 1; 8 + 8 + 1
def test_mix_forward_across_blocks_and_candidate_groups(cpu_native, k):
    # The CPU forward runs blocks of 1,024 elements (the last one partial here), summing up to 8
    # candidates in one pass and adding any further ones 8 at a time; large inputs included,
    # where it once called BLAS.
    torch.manual_seed(13)
    w = torch.randn(k)
    for n in (1000, 3 * 1024 + 17, 2_100_001):
        h = torch.randn(k, n)
        torch.testing.assert_close(ops.mix(h, w), reference.mix(h, w), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The device-independent drivers CUDA runs (csrc/causal_conv1d.h, csrc/linear_attention.h), over
# CPU kernels: every line of them runs here, against the reference.


def driver_op(forward, backward, mask_arity: bool):
    """An autograd function over a driver's forward and backward ops (they have no autograd
    kernel of their own: they exist for these tests)."""

    class Driver(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            ctx.args = args
            return forward(*args)

        @staticmethod
        def backward(ctx, grad):
            args = ctx.args
            if mask_arity:  # conv: (x, weight, bias, dilation) -> backward(grad, x, weight, dilation, mask)
                x, weight, bias, dilation = args
                gx, gw, gb = backward(grad, x, weight, dilation, [True, True])
                return gx, gw, gb if bias is not None else None, None
            q, k, v, mask, causal, scale = args
            return *backward(grad, q, k, v, mask, causal, scale), None, None, None

    return Driver.apply


def conv_driver(x, w, b, dilation):
    ops_ = torch.ops.seqrec_fast
    return driver_op(ops_._causal_conv1d_driver, ops_._causal_conv1d_driver_backward, True)(x, w, b, dilation)


def attention_driver(q, k, v, mask, causal):
    ops_ = torch.ops.seqrec_fast
    return driver_op(ops_._linear_attention_driver, ops_._linear_attention_driver_backward, False)(
        q, k, v, mask, causal, q.shape[-1] ** -0.5)


def conv_driver_case(length, *, dilation=2, k=3, **kw):
    _, ref, inputs = conv_case(length, dilation=dilation, k=k, **kw)
    return (lambda x, w, b: conv_driver(x, w, b, dilation)), ref, inputs


def attention_driver_case(length, *, causal=True, masked=True, **kw):
    _, ref, inputs = attention_case(length, causal=causal, masked=masked, **kw)
    mask = padding_mask(inputs[0].shape[0], length) if masked else None
    return (lambda q, k, v: attention_driver(q, k, v, mask, causal)), ref, inputs


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize(("k", "dilation"), [(3, 2), (2, 1), (5, 4), (1, 1), (3, 300)])
def test_causal_conv1d_driver(cpu_native, length, k, dilation):
    # (1, 1) and dilation 300 leave one active tap: the plain-GEMM branch.
    torch.manual_seed(length * 10 + k)
    assert_matches(*conv_driver_case(length, k=k, dilation=dilation))


def test_causal_conv1d_driver_noncontiguous_without_bias_and_empty(cpu_native):
    torch.manual_seed(21)
    assert_matches(*conv_driver_case(50, noncontig=True, bias=False, c_in=67, c_out=129), atol=1e-4)
    empty = torch.zeros(0, 5, 3)
    assert torch.ops.seqrec_fast._causal_conv1d_driver(empty, torch.randn(4, 3, 2), None, 1).shape == (0, 5, 4)


def test_causal_conv1d_driver_sums_the_taps_in_float(cpu_native):
    # In bfloat16 the taps are summed inside one GEMM (float accumulation), so the driver is at
    # least as accurate as the reference computed in bfloat16.
    torch.manual_seed(22)
    native, ref, inputs = conv_driver_case(50, k=5, dilation=3, c_in=32, c_out=32)
    low_precision_matches(native, ref, inputs, torch.bfloat16, slack=1.5)


@pytest.mark.parametrize("length", [1, 3, 50, 64, 65, 200])  # one chunk, one full chunk, two, four
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("d", "dv"), [(5, 7), (64, 32)])
def test_linear_attention_driver(cpu_native, length, causal, d, dv):
    torch.manual_seed(length + d)
    assert_matches(*attention_driver_case(length, causal=causal, d=d, dv=dv), atol=1e-4)


def test_linear_attention_driver_unmasked_noncontiguous_low_precision(cpu_native):
    torch.manual_seed(23)
    assert_matches(*attention_driver_case(50, masked=False, noncontig=True))
    native, ref, inputs = attention_driver_case(70, d=16, dv=16)
    low_precision_matches(native, ref, inputs, torch.bfloat16)


def test_driver_gradcheck_float64(cpu_native):
    torch.manual_seed(24)
    _gradcheck(conv_driver_case(6, k=3, dilation=2, batch=2, c_in=3, c_out=2))
    _gradcheck(attention_driver_case(5, batch=3, heads=1, d=3, dv=2))


# ---------------------------------------------------------------------------------------------
# float64 gradcheck


def _gradcheck(case):
    native, _, inputs = case
    wide = [t.detach().double().requires_grad_(True) if t is not None else None for t in inputs]
    assert torch.autograd.gradcheck(native, wide, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: conv_case(6, k=3, dilation=2, batch=2, c_in=3, c_out=2),
        lambda: conv_case(4, k=2, dilation=5, batch=1, c_in=2, c_out=3),
        lambda: attention_case(5, causal=True, batch=3, heads=1, d=3, dv=2),
        lambda: attention_case(5, causal=False, batch=3, heads=1, d=3, dv=2),
        lambda: grid_case((0.37, 0.81), grid=3, d_in=3, d_out=2),
        lambda: grid_case((0.37, 0.81), grid=3, blend=False, per_corner=True, d_in=3, d_out=2),
        lambda: grid_case((0.37, 0.81), grid=3, per_corner=True, d_in=3, d_out=2),
        lambda: sliced_case(torch.tensor([3, 1, 4, 0, 4]), torch.tensor([2, 3, 0, 1, 3]), rows=5, in_max=4, out_max=3),
        lambda: mix_case(3),
    ],
    ids=["conv", "conv-dilation-past-end", "attn-causal", "attn-full", "grid-blend", "grid-corners", "grid-per-corner-blend", "sliced", "mix"],
)
def test_gradcheck_float64(cpu_native, make):
    torch.manual_seed(13)
    _gradcheck(make())


# ---------------------------------------------------------------------------------------------
# Dispatch, fallback, errors, torch.compile


def test_public_ops_run_the_native_kernels(cpu_native):
    x = torch.randn(2, 4, 3, requires_grad=True)
    y = ops.causal_conv1d(x, torch.randn(5, 3, 2), None, 1)
    assert "CausalConv1dFunction" in type(y.grad_fn).__name__ or "CppFunction" in repr(y.grad_fn) or "CausalConv1d" in y.grad_fn.name()


def test_native_errors_name_the_argument(cpu_native):
    with pytest.raises(RuntimeError, match="dilation must be >= 1"):
        torch.ops.seqrec_fast.causal_conv1d(torch.zeros(1, 2, 3), torch.zeros(4, 3, 2), None, 0)
    with pytest.raises(RuntimeError, match=r"out_features must lie in \[0, 3\]"):
        torch.ops.seqrec_fast.sliced_linear_routed(torch.zeros(2, 4), torch.zeros(3, 4), None, torch.tensor([1, 2]), torch.tensor([1, 9]))
    with pytest.raises(RuntimeError, match=r"coords\[0\] = 1.5"):
        torch.ops.seqrec_fast.grid_linear(torch.zeros(2, 4), torch.zeros(2, 2, 3, 4), None, torch.tensor([1.5, 0.0]), True, False)


def test_reference_fallback_when_the_extension_is_disabled():
    script = (
        "import torch, seqrec_fast.ops as o\n"
        "assert not o.native_available('cpu')\n"
        "x = torch.randn(2, 5, 3, requires_grad=True)\n"
        "y = o.causal_conv1d(x, torch.randn(4, 3, 2), None, 2)\n"
        "y = o.mix(torch.stack([y, y]), torch.tensor([0.5, 0.5]))\n"
        "y.sum().backward(); assert x.grad is not None and y.shape == (2, 5, 4)\n"
    )
    env = {**os.environ, "SEQREC_FAST_NO_EXT": "1"}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class _TinyEverything(torch.nn.Module):
    """One small model through all five ops, for torch.compile."""

    def __init__(self, d=6):
        super().__init__()
        self.conv = ops.CausalConv1d(d, d, kernel_size=3, dilation=2)
        self.attn = ops.LinearMultiheadAttention(d, n_heads=2)
        self.grid = ops.GridLinear(d, d, grid_size=3)
        self.sliced = ops.SlicedLinear(d, d)

    def forward(self, x, mask, coords, widths):
        h = self.conv(x) + self.attn(x, mask)
        corners = self.grid(h, coords, blend=False)
        h = ops.mix(corners, torch.tensor([0.1, 0.2, 0.3, 0.4]))
        return self.sliced(h.flatten(0, 1), widths, 4).sum()


def test_torch_compile_traces_every_op(cpu_native):
    torch.manual_seed(14)
    model = _TinyEverything()
    x = torch.randn(2, 7, 6)
    mask = padding_mask(2, 7)
    coords = torch.tensor([0.3, 0.8], dtype=torch.float64)
    widths = torch.randint(1, 7, (14,))
    eager_loss = model(x, mask, coords, widths)
    eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss = compiled(x, mask, coords, widths)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    torch.testing.assert_close(loss, eager_loss)
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU): fp32 against the reference, fp16/bf16 against a low-precision one


CUDA_CASES = {
    "conv": lambda L, **kw: conv_case(L, **kw),
    "conv-dilation-past-end": lambda L, **kw: conv_case(L, dilation=L + 1, **kw),
    "conv-wide": lambda L, **kw: conv_case(L, c_in=67, c_out=129, k=3, **kw),
    "attn-causal": lambda L, **kw: attention_case(L, **kw),
    "attn-causal-d64": lambda L, **kw: attention_case(L, d=64, dv=64, **kw),
    "attn-full": lambda L, **kw: attention_case(L, causal=False, **kw),
    "grid-blend": lambda L, **kw: grid_case((0.37, 0.81), **kw),
    "grid-corners": lambda L, **kw: grid_case((0.37, 0.81), blend=False, per_corner=True, **kw),
    "sliced-routed": lambda L, **kw: sliced_case(*routes(), **kw),
    "sliced-uniform": lambda L, **kw: sliced_case(7, 5, **kw),
    "mix": lambda L, **kw: mix_case(5, **kw),
    "mix-two-groups": lambda L, **kw: mix_case(11, **kw),  # the backward reads g once per 8 candidates
}


@pytest.mark.cuda
@pytest.mark.parametrize("length", [1, 50, 200])
@pytest.mark.parametrize("name", sorted(CUDA_CASES))
def test_cuda_fp32(cuda_native, name, length):
    torch.manual_seed(length)
    assert_matches(*CUDA_CASES[name](length, device="cuda"), atol=1e-4, rtol=1e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("name", sorted(CUDA_CASES))
def test_cuda_low_precision(cuda_native, name, dtype):
    torch.manual_seed(15)
    native, ref, inputs = CUDA_CASES[name](50, device="cuda")
    low_precision_matches(native, ref, inputs, dtype)


@pytest.mark.cuda
def test_cuda_noncontiguous_and_all_padding(cuda_native):
    torch.manual_seed(16)
    assert_matches(*conv_case(50, noncontig=True, device="cuda"), atol=1e-4, rtol=1e-3)
    assert_matches(*attention_case(50, noncontig=True, device="cuda"), atol=1e-4, rtol=1e-3)
    assert_matches(*mix_case(3, noncontig=True, device="cuda"), atol=1e-4, rtol=1e-3)
