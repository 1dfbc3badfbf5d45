"""Every op under bf16 autocast (CPU here, CUDA where a GPU is), with fp32 weights, against its
fp32 reference at bf16 tolerance (values and gradients), through the native kernels and through
the references (the fallback path); the cast rule lives in csrc/autocast.cpp and
reference.autocast_inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import seqrec_fast.ops as ops
from seqrec_fast.ops import reference

BF16 = torch.bfloat16
PATHS = ["native", "reference"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _op(path: str, name: str, device: str = "cpu"):
    if path == "native" and not ops.native_available(device):
        pytest.skip(f"no native {device} kernels: {ops.load().to_dict()}")
    return getattr(ops if path == "native" else reference, name)


def _leaf(*shape, scale=1.0, device="cpu"):
    return (torch.randn(*shape, device=device) * scale).requires_grad_(True)


def _close_at_bf16(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """|got - want| within bf16's rounding of the inputs and output: 2% of want's largest value."""
    assert got.dtype == want.dtype or got.dtype == BF16, f"{what}: dtype {got.dtype}"
    err = (got.float() - want.float()).abs().max().item()
    bound = 2e-2 * want.abs().max().item() + 1e-3
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g}"


def check_under_autocast(fn, inputs: list, out_dtype=BF16) -> None:
    """fn(*inputs) under bf16 autocast (of the inputs' device) against fn's fp32 run outside it:
    the output (in out_dtype) and the gradients of every leaf (in the leaf's own fp32)."""
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    want = fn(*inputs)
    upstream = torch.randn_like(want)
    want_grads = torch.autograd.grad(want, leaves, upstream)
    with torch.autocast(inputs[0].device.type, dtype=BF16):
        got = fn(*inputs)
    assert got.dtype == out_dtype
    got_grads = torch.autograd.grad(got, leaves, upstream.to(got.dtype))
    _close_at_bf16(got, want, "output")
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert g.dtype == torch.float32, f"grad {i} is {g.dtype}, its leaf fp32"
        _close_at_bf16(g, w, f"grad {i}")


def _from_autocast_linear(x, w_in):
    """x through an fp32 linear layer inside autocast: bf16, as a model hands it to the next op."""
    return F.linear(x, w_in)


@pytest.mark.parametrize("path", PATHS)
def test_the_issue_snippet(path):
    causal_conv1d = _op(path, "causal_conv1d")
    torch.manual_seed(0)
    x = torch.randn(2, 9, 4)
    with torch.autocast("cpu", dtype=BF16):
        h = F.linear(x, torch.randn(4, 4))
        assert h.dtype == BF16
        y = causal_conv1d(h, torch.randn(4, 4, 3), None, 2)
    assert y.dtype == BF16 and y.shape == (2, 9, 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("k", "dilation", "length"), [(3, 2, 50), (2, 1, 7), (3, 40, 30)])
def test_causal_conv1d(device, path, k, dilation, length):
    op = _op(path, "causal_conv1d", device)
    torch.manual_seed(1)
    on = {"device": device}
    inputs = [_leaf(3, length, 16, **on), _leaf(16, 16, **on), _leaf(24, 16, k, scale=0.2, **on), _leaf(24, **on)]
    check_under_autocast(lambda x, w_in, w, b: op(_from_autocast_linear(x, w_in), w, b, dilation), inputs)
    check_under_autocast(lambda x, w, b: op(x, w, b, dilation), [inputs[0], inputs[2], inputs[3]])  # fp32 x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("blend", "per_corner"), [(True, False), (True, True), (False, False), (False, True)])
def test_grid_linear(device, path, blend, per_corner):
    op = _op(path, "grid_linear", device)
    torch.manual_seed(2)
    on = {"device": device}
    lead = (4, 3, 10) if per_corner else (3, 10)
    coords = torch.tensor([0.37, 0.81])  # float32 coords are not data: never cast
    inputs = [_leaf(*lead, 16, **on), _leaf(16, 16, **on), _leaf(3, 3, 12, 16, scale=0.25, **on), _leaf(3, 3, 12, **on)]
    check_under_autocast(
        lambda x, w_in, w, b: op(_from_autocast_linear(x, w_in), w, b, coords, blend, per_corner=per_corner), inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("routed", [False, True])
def test_sliced_linear(device, path, routed):
    op = _op(path, "sliced_linear", device)
    torch.manual_seed(3)
    on = {"device": device}
    rows = 40
    if routed:
        in_f, out_f = torch.randint(0, 17, (rows,), **on), torch.randint(0, 13, (rows,), **on)
    else:
        in_f, out_f = 11, 9
    inputs = [_leaf(rows, 16, **on), _leaf(16, 16, **on), _leaf(12, 16, scale=0.25, **on), _leaf(12, **on)]
    check_under_autocast(lambda x, w_in, w, b: op(_from_autocast_linear(x, w_in), w, b, in_f, out_f), inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("causal", "length", "d"), [(True, 50, 8), (True, 130, 32), (False, 50, 16)])
def test_linear_attention(device, path, causal, length, d):
    op = _op(path, "linear_attention", device)
    torch.manual_seed(4)
    on = {"device": device}
    mask = (torch.arange(length)[None, :] < torch.tensor([[0], [length // 3], [length]])).to(device)  # row 2: all padding
    inputs = [_leaf(3, 2, length, d, **on), _leaf(3, 2, length, d, **on), _leaf(3, 2, length, d, **on), _leaf(d, d, **on)]
    check_under_autocast(
        lambda q, k, v, w_in: op(_from_autocast_linear(q, w_in), k, v, mask, causal), inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
def test_mix(device, path):
    # bf16 candidates (from an autocast region) mixed by fp32 architecture weights: the output
    # stays bf16, the weights' gradient fp32.
    op = _op(path, "mix", device)
    torch.manual_seed(5)
    on = {"device": device}
    inputs = [_leaf(6, 3, 10, 16, **on), _leaf(16, 16, **on), torch.softmax(torch.randn(6, **on), 0).requires_grad_(True)]
    check_under_autocast(lambda h, w_in, w: op(_from_autocast_linear(h, w_in), w), inputs)
    # fp32 candidates: a memory-bound op runs in its input's dtype, as torch's pointwise ops do
    check_under_autocast(lambda h, w: op(h, w), [inputs[0], inputs[2]], out_dtype=torch.float32)


def test_dropout_runs_in_its_input_dtype():
    torch.manual_seed(6)
    x = torch.randn(4, 50, 16)
    with torch.autocast("cpu", dtype=BF16):
        assert ops.dropout(x, 0.3).dtype == torch.float32
        h = ops.dropout(F.linear(x, torch.randn(16, 16)), 0.3)
    assert h.dtype == BF16
    kept = h != 0
    assert 0.6 < kept.float().mean().item() < 0.8


def test_native_and_reference_agree_under_autocast():
    # The fallback path computes what the native ops compute, in the same dtypes.
    if not ops.native_available("cpu"):
        pytest.skip("no native cpu kernels")
    torch.manual_seed(7)
    x, w, b = torch.randn(3, 20, 16), torch.randn(12, 16, 3) * 0.2, torch.randn(12)
    with torch.autocast("cpu", dtype=BF16):
        got = ops.causal_conv1d(x, w, b, 2)
        want = reference.causal_conv1d(x, w, b, 2)
    assert got.dtype == want.dtype == BF16
    _close_at_bf16(got, want, "conv")
