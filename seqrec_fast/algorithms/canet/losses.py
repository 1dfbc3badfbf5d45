"""CANet's routing losses (Eqs. 7-9) as the trainer's auxiliary loss:
lambda_1 L_uni + lambda_2 L_guide on top of the cross-entropy of the routed output.

    L_uni    per window, the cross-entropy of the router's distribution p(r|u) against the
             uniform one, -(1/n) sum_r log p(r|u) (Eq. 7: each window's distribution, as the
             paper writes it, not the batch's mean); averaged over the batch's windows
    L_guide  per window and dimension (embedding, hidden, depth), the cross-entropy of the
             dimension's marginal p(c|u) = sum of p(r|u) over the routes with choice c against a
             soft label; summed over the dimensions (Eq. 8), averaged over the judged windows

A window is easy when the smallest route ranks its last target in the top k (its other items
left out, as evaluation leaves out history), judged with the current weights, no dropout and no
gradient. Its labels are peaked at the small choices, a hard window's at the large ones: over
n choices i = 0..n-1, softmax(m log(2^i / 2^n)) for hard windows and the same reversed for easy
ones, m 2 for the widths and 1 for the depth (the paper's Sec. III-B-3; the authors' code sums
logits where the paper sums probabilities, and fixes k at 10)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .network import CANet
from .space import DIMENSIONS, RouteSpace

# m of each dimension's soft labels: the widths' peaks are sharper than the depth's.
LABEL_SHARPNESS = {"embedding": 2.0, "hidden": 2.0, "depth": 1.0}


def soft_labels(choices: int, sharpness: float) -> tuple[Tensor, Tensor]:
    """(easy, hard) labels over ``choices`` ascending choices: hard is softmax(m log(2^i / 2^n)),
    peaked at the largest choice; easy is it reversed."""
    hard = torch.softmax(torch.tensor([sharpness * math.log(2.0 ** i / 2.0 ** choices) for i in range(choices)]), 0)
    return hard.flip(0), hard


def uniform_loss(logits: Tensor) -> Tensor:
    """Eq. 7: the mean over windows of -(1/n) sum_r log p(r|u), p = softmax(logits [B, n])."""
    return -F.log_softmax(logits, dim=-1).mean(dim=-1).mean()


def log_marginals(logits: Tensor, space: RouteSpace) -> list[Tensor]:
    """log p(c|u) [B, n_c] of each dimension's choices: the log of the summed route probabilities."""
    log_p = F.log_softmax(logits, dim=-1)
    indices = torch.tensor([space.choice_indices(r) for r in range(len(space))], device=logits.device)
    marginals = []
    for dimension, choices in enumerate(space.choices):
        member = F.one_hot(indices[:, dimension], len(choices)).bool()  # [routes, choices]
        marginals.append(torch.logsumexp(log_p[:, :, None].masked_fill(~member, float("-inf")), dim=1))
    return marginals


class RoutingLosses(nn.Module):
    """lambda_1 L_uni + lambda_2 L_guide of the router's logits from the model's last training
    forward; it also counts, for the epoch's log, the easy windows and the losses, in buffers
    that the trainer's checkpoints keep."""

    def __init__(self, model: CANet, uniform_weight: float, guide_weight: float, guide_k: int, filter_history: bool):
        super().__init__()
        self.__dict__["model"] = model  # not registered: the trainer trains and saves it
        self.uniform_weight, self.guide_weight = uniform_weight, guide_weight
        self.guide_k, self.filter_history = guide_k, filter_history
        for name, choices in zip(DIMENSIONS, model.space.choices):
            labels = torch.stack(soft_labels(len(choices), LABEL_SHARPNESS[name]))
            self.register_buffer(f"{name}_labels", labels, persistent=False)  # [easy, hard]
        # easy and judged windows, the losses' sums and the steps since the last epoch_summary()
        self.register_buffer("tally", torch.zeros(5, dtype=torch.float64))

    def labels(self, easy: Tensor) -> list[Tensor]:
        """Each dimension's soft labels [B, n_c]: row 0 of its table for easy windows, row 1 for hard."""
        return [getattr(self, f"{name}_labels")[(~easy).long()] for name in DIMENSIONS]

    def guide_loss(self, logits: Tensor, easy: Tensor) -> Tensor:
        """Eq. 8 per window [B]: sum over the dimensions of -sum_c y_c log p(c|u)."""
        marginals = log_marginals(logits, self.model.space)
        return sum(-(labels * log_p).sum(dim=-1) for labels, log_p in zip(self.labels(easy), marginals))

    @torch.no_grad()
    def smallest_route_hits(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Whether route 0 ranks each window's target in its top k (ties count against it), with
        the window's other items left out when ``filter_history``; bool [B]."""
        model = self.model
        training = model.training
        model.eval()
        try:
            with model.on_route(0):
                scores = model.predict(inputs).float()
        finally:
            model.train(training)
        left_out = torch.zeros_like(scores, dtype=torch.bool)
        if self.filter_history:
            left_out.scatter_(1, inputs, True)
            left_out.scatter_(1, targets[:, None], False)
        left_out[:, 0] = True  # padding
        scores = scores.masked_fill(left_out, float("-inf"))
        at_least_as_high = (scores >= scores.gather(1, targets[:, None])).sum(dim=1)
        return at_least_as_high <= self.guide_k

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        logits = self.model.router_logits
        if logits is None:
            raise RuntimeError("the routing losses read the router's logits: run the model's training forward first")
        self.model.router_logits = None
        last = targets[:, -1]
        judged = last > 0
        easy = self.smallest_route_hits(inputs[judged], last[judged])
        uniform = uniform_loss(logits)
        guide = self.guide_loss(logits[judged], easy).mean() if bool(judged.any()) else logits.new_zeros(())
        counts = (easy.sum(), judged.sum(), uniform.detach(), guide.detach(), torch.ones_like(uniform))
        self.tally += torch.stack([count.to(self.tally.dtype) for count in counts])
        return self.uniform_weight * uniform + self.guide_weight * guide

    def epoch_summary(self) -> dict[str, float]:
        """The easy share of the judged windows and the mean losses since the last call."""
        easy, judged, uniform, guide, steps = self.tally.tolist()
        self.tally.zero_()
        return {"easy_fraction": easy / judged if judged else 0.0, "uniform_loss": uniform / max(steps, 1.0),
                "guide_loss": guide / max(steps, 1.0)}
