"""The native dropout against its pure-PyTorch reference (the same hashed mask, bit for bit),
its gradient, the statistics of its mask, determinism under torch's seed, and torch.compile."""

from __future__ import annotations

import pytest
import torch

import seqrec_fast.ops as ops
from seqrec_fast.ops import reference


@pytest.fixture(scope="module")
def cpu_native():
    if not ops.native_available("cpu"):
        pytest.skip(f"no native cpu kernels: {ops.load().to_dict()}")


def native(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    return torch.ops.seqrec_fast.dropout(x, p, torch.tensor(seed, dtype=torch.int64))


# 40,000 elements cross the CPU kernel's 16,384-element blocks; seeds above 2^32 exercise the
# high half of the key.
SHAPES = [(1,), (7,), (3, 5, 11), (40_000,), (2, 0, 3)]
SEEDS = [0, 12345, 2**40 + 17, 2**62 - 1]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_native_equals_the_reference_bit_for_bit(cpu_native, shape, seed, p):
    x = torch.randn(shape)
    torch.testing.assert_close(native(x, p, seed), reference.dropout(x, p, seed), rtol=0, atol=0)


def test_float64_and_noncontiguous_inputs(cpu_native):
    x = torch.randn(6, 9, dtype=torch.float64)
    torch.testing.assert_close(native(x, 0.3, 7), reference.dropout(x, 0.3, 7), rtol=0, atol=0)
    view = torch.randn(9, 6).t()  # the mask follows the logical (row-major) order
    torch.testing.assert_close(native(view, 0.3, 7), reference.dropout(view.contiguous(), 0.3, 7), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_on_cpu_matches_the_float_computation(cpu_native, dtype):
    x = torch.randn(1000).to(dtype)
    expected = reference.dropout(x.float(), 0.25, 3).to(dtype)
    torch.testing.assert_close(native(x, 0.25, 3), expected, rtol=0, atol=0)


def test_gradient_is_the_same_mask_scaled(cpu_native):
    x = torch.randn(4, 33, requires_grad=True)
    g = torch.randn(4, 33)
    native(x, 0.4, 99).backward(g)
    keep = reference.dropout_keep_mask(x.numel(), 0.4, 99).view(x.shape)
    torch.testing.assert_close(x.grad, torch.where(keep, g / 0.6, torch.zeros(())), rtol=1e-6, atol=0)


def test_gradcheck_and_double_backward_float64(cpu_native):
    x = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    seed = torch.tensor(5, dtype=torch.int64)
    function = lambda t: torch.ops.seqrec_fast.dropout(t, 0.3, seed)  # noqa: E731
    assert torch.autograd.gradcheck(function, (x,))
    assert torch.autograd.gradgradcheck(function, (x,))


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_mask_statistics(cpu_native, p):
    n = 1 << 20
    dropped = (native(torch.ones(n), p, 2024) == 0).double()
    # Binomial standard deviation: sqrt(p (1 - p) / n) <= 0.0005; allow 6 of them.
    assert abs(dropped.mean().item() - p) < 6 * (p * (1 - p) / n) ** 0.5
    # Neighbouring elements and neighbouring seeds are uncorrelated.
    assert abs(torch.corrcoef(torch.stack([dropped[:-1], dropped[1:]]))[0, 1].item()) < 0.01
    other = (native(torch.ones(n), p, 2025) == 0).double()
    assert abs(torch.corrcoef(torch.stack([dropped, other]))[0, 1].item()) < 0.01


def test_expectation_is_preserved(cpu_native):
    x = torch.full((1 << 20,), 3.0)
    assert native(x, 0.5, 1).mean().item() == pytest.approx(3.0, rel=5e-3)


def test_public_op_follows_torch_seed_and_ignores_thread_count(cpu_native):
    x = torch.randn(50_000)
    torch.manual_seed(11)
    first = ops.dropout(x, 0.5)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(11)
        again = ops.dropout(x, 0.5)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(ops.dropout(x, 0.5), first)  # the generator moved on
    assert ops.dropout(x, 0.5, training=False) is x and ops.dropout(x, 0.0) is x


def test_bad_arguments(cpu_native):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ops.dropout(torch.ones(3), 1.0)
    with pytest.raises(RuntimeError, match="p must be in"):
        torch.ops.seqrec_fast.dropout(torch.ones(3), -0.1, torch.tensor(0))
    with pytest.raises(RuntimeError, match="seed must be a one-element int64 CPU tensor"):
        torch.ops.seqrec_fast.dropout(torch.ones(3), 0.5, torch.tensor(0.5))
    with pytest.raises(RuntimeError, match="x must be a floating tensor"):
        torch.ops.seqrec_fast.dropout(torch.ones(3, dtype=torch.int64), 0.5, torch.tensor(0))


def test_module_is_nn_dropout_in_eval_and_torch_compile_traces_it(cpu_native):
    module = ops.Dropout(0.5)
    x = torch.randn(8, 16, requires_grad=True)
    module.eval()
    assert module(x) is x
    module.train()
    compiled = torch.compile(lambda t: module(t).sum(), fullgraph=True, backend="aot_eager")
    compiled(x).backward()
    kept = x.grad != 0
    assert torch.all((x.grad[kept] - 2.0).abs() < 1e-6) and 0 < kept.sum() < x.numel()
    with pytest.raises(ValueError, match="dropout probability"):
        ops.Dropout(1.0)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_the_reference(dtype):
    if not ops.native_available("cuda"):
        pytest.skip("no native CUDA kernels")
    x = torch.randn(3, 40_001, device="cuda").to(dtype)
    expected = reference.dropout(x.float(), 0.3, 2**40 + 3).to(dtype)
    torch.testing.assert_close(native(x, 0.3, 2**40 + 3), expected, rtol=0, atol=0)
    x.requires_grad_(True)
    native(x, 0.3, 8).sum().backward()
    keep = reference.dropout_keep_mask(x.numel(), 0.3, 8, device="cuda").view(x.shape)
    torch.testing.assert_close(x.grad, torch.where(keep, 1 / 0.7, 0.0).to(dtype), rtol=1e-3, atol=1e-3)
