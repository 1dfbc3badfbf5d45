"""Full-softmax cross-entropy over a large item vocabulary without materialising all logits.

``linear_cross_entropy(hidden, weight, bias, targets)`` equals
``F.cross_entropy(hidden @ weight.T + bias, targets)`` but works through the rows of ``hidden``
in chunks: the forward keeps only each row's logsumexp, and the backward recomputes one chunk's
logits at a time to form softmax - onehot. Peak extra memory is one [chunk, V] block instead of
[N, V] logits, their softmax and their gradient (at N = 256·200 rows and V = 26,744 items the
unfused loss holds several GB; this one a few hundred MB)."""

from __future__ import annotations

import torch
from torch import Tensor

#: elements of one [rows, V] logits block; 2**23 fp32 values = 32 MiB
DEFAULT_BLOCK_ELEMENTS = 1 << 23


def chunk_rows(n_classes: int, block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
    return max(1, block_elements // max(1, n_classes))


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    logits = hidden @ weight.t()
    if bias is not None:
        logits = logits + bias
    return logits.float()


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, rows: int) -> Tensor:
        n = hidden.shape[0]
        logsumexp = torch.empty(n, dtype=torch.float32, device=hidden.device)
        target_logit = torch.empty(n, dtype=torch.float32, device=hidden.device)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            logits = _chunk_logits(hidden[start:stop], weight, bias)
            logsumexp[start:stop] = torch.logsumexp(logits, dim=1)
            target_logit[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1)
        ctx.save_for_backward(hidden, weight, bias, targets, logsumexp)
        ctx.rows = rows
        return (logsumexp - target_logit).sum() / max(n, 1)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_output: Tensor):
        hidden, weight, bias, targets, logsumexp = ctx.saved_tensors
        n, rows = hidden.shape[0], ctx.rows
        scale = grad_output.float() / max(n, 1)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        grad_bias = (torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
                     if bias is not None and ctx.needs_input_grad[2] else None)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            chunk = hidden[start:stop]
            # d loss / d logits = (softmax - onehot(target)) / n, formed in place in the chunk
            grad_logits = _chunk_logits(chunk, weight, bias).sub_(logsumexp[start:stop, None]).exp_()
            grad_logits.scatter_add_(1, targets[start:stop, None],
                                     torch.full((stop - start, 1), -1.0, device=grad_logits.device))
            grad_logits.mul_(scale)
            if grad_hidden is not None:
                grad_hidden[start:stop] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.t(), chunk.float())
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
        return (grad_hidden,
                None if grad_weight is None else grad_weight.to(weight.dtype),
                None if grad_bias is None else grad_bias.to(bias.dtype),
                None, None)


def linear_cross_entropy(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                         block_elements: int = DEFAULT_BLOCK_ELEMENTS) -> Tensor:
    """Mean cross-entropy of ``hidden [N, d] @ weight[V, d].T (+ bias [V])`` against ``targets [N]``
    (class indices in [0, V)), chunked so that no [N, V] tensor is ever allocated."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"expected hidden [N, d] and weight [V, d], got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected targets [{hidden.shape[0]}], got {tuple(targets.shape)}")
    return LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows(weight.shape[0], block_elements))
