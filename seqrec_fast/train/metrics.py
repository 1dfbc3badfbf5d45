"""Ranking metrics for one held-out item per user: HR (= Recall with one relevant item), NDCG
and MRR at several cutoffs, and AUC.

A user's result is summarised by three counts over the candidate items other than the target:
how many score strictly higher (``greater``), how many tie with it (``ties``), and how many there
are (``n_negatives``). Ties never favour the model:

- ``ties="pessimistic"``: the target ranks below every tied item;
- ``ties="expected"``: the expectation over a uniformly random order of the tied items (what a
  random tie-break gives on average).

Either way a constant scorer gets at best random-guess metrics, never perfect ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .config import DEFAULT_CUTOFFS, METRIC_NAMES, TIE_POLICIES


@dataclass
class RankCounts:
    """Per-user counts (int64 numpy arrays of equal length)."""

    greater: np.ndarray
    ties: np.ndarray
    n_negatives: np.ndarray

    @staticmethod
    def concatenate(parts: list["RankCounts"]) -> "RankCounts":
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return RankCounts(empty, empty, empty)
        return RankCounts(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("greater", "ties", "n_negatives")))


def rank_counts(scores: Tensor, targets: Tensor, candidates: Tensor | None = None) -> RankCounts:
    """Counts for scores [B, V], targets [B] (column indices) and an optional boolean candidate
    mask [B, V] (items outside it are not ranked; the target is always ranked)."""
    target_scores = scores.gather(1, targets[:, None])
    if candidates is None:
        candidates = torch.ones_like(scores, dtype=torch.bool)
    candidates = candidates.clone()
    candidates.scatter_(1, targets[:, None], False)  # count the other items only
    greater = ((scores > target_scores) & candidates).sum(1)
    ties = ((scores == target_scores) & candidates).sum(1)
    # A NaN score for the target is a failure: rank it last.
    nan_target = torch.isnan(target_scores[:, 0])
    n_negatives = candidates.sum(1)
    greater = torch.where(nan_target, n_negatives, greater)
    ties = torch.where(nan_target, torch.zeros_like(ties), ties)
    return RankCounts(greater.cpu().numpy().astype(np.int64), ties.cpu().numpy().astype(np.int64),
                      n_negatives.cpu().numpy().astype(np.int64))


def _mean_gain_over_ranks(low: np.ndarray, high: np.ndarray, cutoff: int, gain) -> np.ndarray:
    """Mean over 0-based ranks r in [low, high] of gain(r) when r < cutoff, else 0."""
    table = np.concatenate([[0.0], np.cumsum(gain(np.arange(cutoff, dtype=np.float64)))])
    lo = np.minimum(low, cutoff)
    hi = np.minimum(high + 1, cutoff)
    return (table[hi] - table[lo]) / (high - low + 1)


def per_user_metrics(counts: RankCounts, cutoffs=DEFAULT_CUTOFFS, ties: str = "pessimistic") -> dict[str, np.ndarray]:
    """Metric values [users] (float64) keyed like ``ndcg@10`` and ``auc``."""
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    greater = counts.greater.astype(np.int64)
    tied = counts.ties.astype(np.int64)
    if ties == "pessimistic":
        low = high = greater + tied
        below = greater + tied
    else:
        low, high = greater, greater + tied
        below = greater + 0.5 * tied
    gains = {
        "hr": lambda r: np.ones_like(r),
        "ndcg": lambda r: 1.0 / np.log2(r + 2.0),
        "mrr": lambda r: 1.0 / (r + 1.0),
    }
    values: dict[str, np.ndarray] = {}
    for cutoff in cutoffs:
        for name, gain in gains.items():
            values[f"{name}@{cutoff}"] = _mean_gain_over_ranks(low, high, cutoff, gain)
        values[f"recall@{cutoff}"] = values[f"hr@{cutoff}"]  # one relevant item per user
    n_negatives = counts.n_negatives.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        values["auc"] = np.where(n_negatives > 0, 1.0 - below / np.maximum(n_negatives, 1.0), 1.0)
    return values


def summarise(counts: RankCounts, cutoffs=DEFAULT_CUTOFFS, ties: str = "pessimistic") -> dict[str, float]:
    """Mean of every metric over users, in a fixed key order (metric-major, then cutoff)."""
    values = per_user_metrics(counts, cutoffs, ties)
    ordered = [f"{name}@{k}" for name in METRIC_NAMES for k in cutoffs] + ["auc"]
    n = len(counts.greater)
    return {key: float(values[key].mean()) if n else float("nan") for key in ordered}
