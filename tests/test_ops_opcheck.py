"""torch.library.opcheck over every native op, forward and backward, at a few shapes each: the
schemas (no undeclared mutation or aliasing), the fake kernels (shapes, dtypes, strides against
the real kernels, static and dynamic shapes) and the autograd registration."""

from __future__ import annotations

import pytest
import torch

import seqrec_fast.ops as ops


@pytest.fixture(scope="module", autouse=True)
def cpu_native():
    if not ops.native_available("cpu"):
        pytest.skip(f"no native cpu kernels: {ops.load().to_dict()}")


def _t(*shape, grad=False, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def _mask(batch, length):
    return torch.arange(length)[None, :] < torch.randint(0, length + 1, (batch, 1))


def _seed():
    return torch.tensor(12345, dtype=torch.int64)


def _routes(rows, in_max, out_max):
    return torch.randint(0, in_max + 1, (rows,)), torch.randint(0, out_max + 1, (rows,))


def _routed_backward_args(rows, x, w, b, in_r, out_r):
    """The backward's arguments hold the forward's plan, so they are made once the ops are loaded."""

    def make():
        _, order, groups = torch.ops.seqrec_fast.sliced_linear_routed_forward(x, w, b, in_r, out_r)
        return _t(rows, 5), x, w, order, groups, [True, True]

    return make


def cases():
    """(op name, args) pairs; forward args require grad so that autograd is checked. Seeded, so
    that a failing case can be rerun with the same values."""
    torch.manual_seed(0)
    coords = torch.tensor([0.37, 0.81], dtype=torch.float64)
    out = []
    for shape in [(5,), (3, 4, 6), (2, 1, 7)]:
        out.append(("dropout", (_t(*shape, grad=True), 0.3, _seed())))
    for k, shape in [(1, (5,)), (4, (3, 7)), (9, (2, 3, 5))]:
        out.append(("mix", (_t(k, *shape, grad=True), _t(k, grad=True))))
        out.append(("mix_backward", (_t(*shape), _t(k, *shape), _t(k), [True, True])))
        out.append(("mix_backward", (_t(*shape), _t(k, *shape), _t(k), [True, False])))
    for length, k, dilation, bias in [(1, 3, 2, True), (9, 3, 2, False), (20, 2, 7, True), (5, 4, 9, True)]:
        x, w = _t(2, length, 5, grad=True), _t(6, 5, k, grad=True)
        out.append(("causal_conv1d", (x, w, _t(6, grad=True) if bias else None, dilation)))
        out.append(("causal_conv1d_backward", (_t(2, length, 6), x.detach(), w.detach(), dilation, [True, True])))
        out.append(("causal_conv1d_backward", (_t(2, length, 6), x.detach(), w.detach(), dilation, [False, True])))
    for length, causal, masked in [(1, True, True), (50, True, True), (70, True, False), (9, False, True)]:
        q, k, v = _t(2, 2, length, 4, grad=True), _t(2, 2, length, 4, grad=True), _t(2, 2, length, 3, grad=True)
        mask = _mask(2, length) if masked else None
        out.append(("linear_attention", (q, k, v, mask, causal, 0.5)))
        out.append(("linear_attention_backward",
                    (_t(2, 2, length, 3), q.detach(), k.detach(), v.detach(), mask, causal, 0.5)))
    for blend, per_corner, bias in [(True, False, True), (True, True, False), (False, False, True), (False, True, True)]:
        x = _t(*((4,) if per_corner else ()), 3, 5, 6, grad=True)
        w = _t(3, 3, 7, 6, grad=True)
        b = _t(3, 3, 7, grad=True) if bias else None
        out.append(("grid_linear", (x, w, b, coords, blend, per_corner)))
        g = _t(*(() if blend else (4,)), 3, 5, 7)
        out.append(("grid_linear_backward", (g, x.detach(), w.detach(), coords, blend, per_corner, [True, True])))
    for rows, in_f, out_f, bias in [(7, 6, 4, True), (5, 0, 3, False), (9, 6, 5, True)]:
        x, w = _t(rows, 6, grad=True), _t(5, 6, grad=True)
        b = _t(5, grad=True) if bias else None
        out.append(("sliced_linear", (x, w, b, in_f, out_f)))
        out.append(("sliced_linear_backward", (_t(rows, 5), x.detach(), w.detach(), in_f, out_f, [True, True])))
        in_r, out_r = _routes(rows, 6, 5)
        out.append(("sliced_linear_routed", (x, w, b, in_r, out_r)))
        # The autograd kernel of sliced_linear_routed calls its forward below autograd: no grads here.
        plain = (x.detach(), w.detach(), None if b is None else b.detach(), in_r, out_r)
        out.append(("sliced_linear_routed_forward", plain))
        out.append(("sliced_linear_routed_backward", _routed_backward_args(rows, *plain)))
    return out


CASES = cases()


@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{name}-{i}" for i, (name, _) in enumerate(CASES)])
def test_opcheck(name, args):
    args = args() if callable(args) else args
    torch.library.opcheck(getattr(torch.ops.seqrec_fast, name).default, args)


def test_every_op_is_checked():
    schemas = {op.split("::")[1] for op in torch._C._dispatch_get_all_op_names() if op.startswith("seqrec_fast::")}
    internal = {name for name in schemas if name.startswith("_") or name in {"build_info", "cuda_runtime_info"}}
    assert schemas - internal == {name for name, _ in CASES}
