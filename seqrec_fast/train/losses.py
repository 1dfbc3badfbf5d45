"""Training losses. Each takes the model, the representations at the positions that have a
target ([N, D]), the targets [N] (item ids >= 1) and, for sampled losses, negatives [N, n].

- ``ce``: full-softmax cross-entropy over all items (padding excluded), fused and chunked for
  dot-product models so the [N, n_items] logits never exist;
- ``bce``: binary cross-entropy against n sampled negatives (the original SASRec);
- ``sampled_softmax``: softmax over the target and n negatives with the logQ correction
  (Yi et al., RecSys 2019) for the sampler's proposal distribution;
- ``gbce``: generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023), calibrated by t;
- ``stosa``: STOSA's BPR over Wasserstein distances plus its positive-vs-negative margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import SequentialRecommender
from ..models.stosa import wasserstein_elementwise
from .fused_cross_entropy import linear_cross_entropy


@dataclass(frozen=True)
class LossSpec:
    fn: Callable[..., Tensor]
    default_negatives: int  # 0: the loss uses no sampled negatives


def full_softmax_ce(model: SequentialRecommender, hidden: Tensor, targets: Tensor, negatives=None, *,
                    fused: bool = True, **_) -> Tensor:
    output = model.output_embedding()
    if output is None:  # not a dot-product model: score every item, then softmax
        return F.cross_entropy(model.score_all(hidden)[:, 1:].float(), targets - 1)
    weight, bias = output
    weight, bias = weight[1:], None if bias is None else bias[1:]  # item 0 is padding, never a class
    if fused:
        return linear_cross_entropy(hidden, weight, bias, targets - 1)
    logits = hidden @ weight.t()
    return F.cross_entropy((logits if bias is None else logits + bias).float(), targets - 1)


def _positive_and_negative_scores(model, hidden, targets, negatives) -> tuple[Tensor, Tensor]:
    if negatives is None:
        raise ValueError("this loss needs sampled negatives: set n_negatives > 0")
    scores = model.score_items(hidden, torch.cat([targets[:, None], negatives], dim=1)).float()
    return scores[:, 0], scores[:, 1:]


def binary_cross_entropy(model, hidden, targets, negatives, **_) -> Tensor:
    positive, negative = _positive_and_negative_scores(model, hidden, targets, negatives)
    return (F.softplus(-positive) + F.softplus(negative).sum(1)).mean()


def sampled_softmax(model, hidden, targets, negatives, *, log_q: Tensor | None = None, **_) -> Tensor:
    positive, negative = _positive_and_negative_scores(model, hidden, targets, negatives)
    logits = torch.cat([positive[:, None], negative], dim=1)
    if log_q is not None:  # logQ correction: subtract the log proposal probability of every item
        logits = logits - log_q[torch.cat([targets[:, None], negatives], dim=1)]
    return F.cross_entropy(logits, torch.zeros_like(targets))


def generalised_bce(model, hidden, targets, negatives, *, n_items: int, gbce_t: float = 0.75, **_) -> Tensor:
    positive, negative = _positive_and_negative_scores(model, hidden, targets, negatives)
    alpha = negative.shape[1] / max(n_items - 1, 1)  # negative sampling rate
    beta = alpha * (gbce_t * (1 - 1 / alpha) + 1 / alpha)
    # -log(sigmoid(s+)^beta) - sum log(1 - sigmoid(s-))
    return (beta * F.softplus(-positive) + F.softplus(negative).sum(1)).mean()


def stosa_loss(model, hidden, targets, negatives, *, pvn_weight: float = 0.005, **_) -> Tensor:
    if not hasattr(model, "distance_to_items"):
        raise ValueError(f"loss 'stosa' needs a distance-based model (stosa), not {type(model).__name__}")
    if negatives is None:
        raise ValueError("loss 'stosa' needs sampled negatives: set n_negatives > 0")
    distances = model.distance_to_items(hidden, torch.cat([targets[:, None], negatives], dim=1)).float()
    positive, negative = distances[:, :1], distances[:, 1:]
    bpr = -F.logsigmoid(negative - positive).mean(1)
    # the sequence should be closer to its target than the target is to the negatives
    target_mean, target_cov = model.item_distributions(targets[:, None])
    target_to_negative = wasserstein_elementwise(target_mean, target_cov, *model.item_distributions(negatives)).float()
    margin = (positive - target_to_negative).clamp_min(0).mean(1)
    return (bpr + pvn_weight * margin).mean()


LOSSES: dict[str, LossSpec] = {
    "ce": LossSpec(full_softmax_ce, 0),
    "bce": LossSpec(binary_cross_entropy, 1),
    "sampled_softmax": LossSpec(sampled_softmax, 256),
    "gbce": LossSpec(generalised_bce, 256),
    "stosa": LossSpec(stosa_loss, 1),
}


def loss_spec(name: str) -> LossSpec:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}") from None


def proposal_log_probabilities(sampler: str, item_counts: np.ndarray) -> Tensor:
    """log q(item) [n_items + 1] of the loader's negative sampler, for the logQ correction."""
    counts = np.asarray(item_counts, dtype=np.float64).copy()
    counts[0] = 0.0
    if sampler == "uniform":
        counts[1:] = 1.0
    elif sampler != "popularity":
        raise ValueError(f"unknown negative_sampler {sampler!r}; valid: popularity, uniform")
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(counts / counts.sum())).float()
