"""Full-softmax cross-entropy over a large item vocabulary without materialising all logits.

``linear_cross_entropy(hidden, weight, bias, targets)`` equals
``F.cross_entropy(hidden @ weight.T + bias, targets)`` but works through the rows of ``hidden``
in chunks: the forward keeps only each row's logsumexp, and the backward recomputes one chunk's
logits at a time to form softmax - onehot. Peak extra memory is one [chunk, V] block instead of
[N, V] logits, their softmax and their gradient (at N = 256·200 rows and V = 26,744 items the
unfused loss holds several GB; this one a few hundred MB).

How large a chunk is depends on the device. Each chunk costs about twenty ops (its GEMMs and
the passes over its logits), and each op a fixed host-side cost to issue. On a CPU an op over a
block runs long enough for that cost to vanish, and a block that stays in the last-level cache
runs faster than a larger one: 32 MiB. A GPU streams such a block in about the time the host
takes to issue the op, so with the CPU's chunks an ML-20M-scale step (N = 256·200 rows,
V = 26,744) would spend its time waiting on the host. On CUDA a block is 16 times larger,
512 MiB of fp32 logits: every op of a chunk then outlasts the cost of issuing it many times over,
so the step runs at the rate of its GEMMs and passes, in a handful of chunks, while its extra
memory stays small next to the device's. (A fused kernel such as Liger-Kernel's or
cut-cross-entropy's would also save the passes over memory, at the price of a Triton dependency
that a CPU install cannot exercise; the chunking keeps one exact implementation on every device.)
``benchmarks/bench_kernels.py`` times the loss at several chunk counts.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: elements of one [rows, V] logits block on a CPU: 2**23 fp32 values = 32 MiB, a last-level cache
CPU_BLOCK_ELEMENTS = 1 << 23
#: on CUDA: 2**27 fp32 values = 512 MiB, so that each op of a chunk outlasts the host's cost to issue it
CUDA_BLOCK_ELEMENTS = 1 << 27


def default_block_elements(device: torch.device) -> int:
    return CUDA_BLOCK_ELEMENTS if device.type == "cuda" else CPU_BLOCK_ELEMENTS


def chunk_rows(n_classes: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, n_classes))


def gemm_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype the logits' GEMMs run in: the autocast dtype inside an autocast region of hidden's
    device (F.linear's rule), else the inputs' common dtype. The backward recomputes the logits
    outside that region, so the forward fixes it for both."""
    device = hidden.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    logits = hidden @ weight.t()
    if bias is not None:
        logits = logits + bias
    return logits.float()


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, rows: int) -> Tensor:
        n = hidden.shape[0]
        ctx.gemm_dtype = gemm_dtype(hidden, weight)
        h, w = hidden.to(ctx.gemm_dtype), weight.to(ctx.gemm_dtype)
        logsumexp = torch.empty(n, dtype=torch.float32, device=hidden.device)
        target_logit = torch.empty(n, dtype=torch.float32, device=hidden.device)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            logits = _chunk_logits(h[start:stop], w, bias)
            logsumexp[start:stop] = torch.logsumexp(logits, dim=1)
            target_logit[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, bias, targets, logsumexp)
        ctx.rows = rows
        return (logsumexp - target_logit).sum() / max(n, 1)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        hidden, weight, bias, targets, logsumexp = ctx.saved_tensors
        n, rows = hidden.shape[0], ctx.rows
        h, w = hidden.to(ctx.gemm_dtype), weight.to(ctx.gemm_dtype)
        scale = grad_output.float() / max(n, 1)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        grad_bias = (torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
                     if bias is not None and ctx.needs_input_grad[2] else None)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            chunk = h[start:stop]
            # d loss / d logits = (softmax - onehot(target)) / n, formed in place in the chunk
            grad_logits = _chunk_logits(chunk, w, bias).sub_(logsumexp[start:stop, None]).exp_()
            grad_logits.scatter_add_(1, targets[start:stop, None],
                                     torch.full((stop - start, 1), -1.0, device=grad_logits.device))
            grad_logits.mul_(scale)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
            grad_logits = grad_logits.to(ctx.gemm_dtype)  # the products run in the forward's GEMM dtype
            if grad_hidden is not None:
                grad_hidden[start:stop] = (grad_logits @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad_logits.t() @ chunk
        return (grad_hidden,
                None if grad_weight is None else grad_weight.to(weight.dtype),
                None if grad_bias is None else grad_bias.to(bias.dtype),
                None, None)


def linear_cross_entropy(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         block_elements: int | None = None) -> Tensor:
    """Mean cross-entropy of ``hidden [N, d] @ weight[V, d].T (+ bias [V])`` against ``targets [N]``
    (class indices in [0, V)), chunked so that no [N, V] tensor is ever allocated; a chunk holds
    ``block_elements`` logits (default: the device's, see the module's notes)."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"expected hidden [N, d] and weight [V, d], got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected targets [{hidden.shape[0]}], got {tuple(targets.shape)}")
    if block_elements is None:
        block_elements = default_block_elements(hidden.device)
    return LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows(weight.shape[0], block_elements))
