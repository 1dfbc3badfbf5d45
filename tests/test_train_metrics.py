"""Ranking metrics against a plain per-user reference, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_fast.train.evaluation import history_mask
from seqrec_fast.train.metrics import per_user_metrics, rank_counts, summarise


def reference_user_metrics(scores: list[float], target: int, candidates: list[int], ties: str, k: int) -> dict:
    """Enumerate every order of the tied items (expected) or put the target last among them."""
    others = [scores[j] for j in candidates if j != target]
    s = scores[target]
    greater = sum(1 for x in others if x > s)
    tied = sum(1 for x in others if x == s)
    ranks = [greater + tied] if ties == "pessimistic" else list(range(greater, greater + tied + 1))
    hr = np.mean([1.0 if r < k else 0.0 for r in ranks])
    ndcg = np.mean([1.0 / math.log2(r + 2) if r < k else 0.0 for r in ranks])
    mrr = np.mean([1.0 / (r + 1) if r < k else 0.0 for r in ranks])
    # AUC: share of (target, negative) pairs ordered correctly, a tie counting as the policy says
    wins = sum(1.0 if s > x else (0.5 if ties == "expected" else 0.0) if s == x else 0.0 for x in others)
    auc = wins / len(others) if others else 1.0
    return {f"hr@{k}": hr, f"ndcg@{k}": ndcg, f"mrr@{k}": mrr, "auc": auc}


@pytest.mark.parametrize("ties", ["pessimistic", "expected"])
def test_metrics_equal_reference_on_random_scores_with_ties(ties):
    generator = torch.Generator().manual_seed(0)
    n_users, n_items = 64, 40
    # few distinct values, so that ties are everywhere
    scores = torch.randint(0, 6, (n_users, n_items), generator=generator).float()
    targets = torch.randint(1, n_items, (n_users,), generator=generator)
    candidates = torch.rand(n_users, n_items, generator=generator) > 0.3
    candidates[:, 0] = False
    counts = rank_counts(scores, targets, candidates)
    values = per_user_metrics(counts, cutoffs=(1, 5, 10), ties=ties)
    for user in range(n_users):
        allowed = [j for j in range(n_items) if candidates[user, j] or j == targets[user]]
        for k in (1, 5, 10):
            expected = reference_user_metrics(scores[user].tolist(), int(targets[user]), allowed, ties, k)
            for key, value in expected.items():
                assert values[key][user] == pytest.approx(value, abs=1e-12), (user, key)


def test_constant_scorer_cannot_look_good():
    scores = torch.zeros(50, 101)
    targets = torch.arange(1, 51)
    candidates = torch.ones_like(scores, dtype=torch.bool)
    candidates[:, 0] = False
    counts = rank_counts(scores, targets, candidates)
    pessimistic = summarise(counts, ties="pessimistic")
    expected = summarise(counts, ties="expected")
    assert pessimistic["hr@10"] == 0.0 and pessimistic["ndcg@10"] == 0.0 and pessimistic["auc"] == 0.0
    assert expected["hr@10"] == pytest.approx(10 / 100)  # exactly a random guess
    assert expected["auc"] == pytest.approx(0.5)


def test_nan_target_score_ranks_last():
    scores = torch.randn(3, 10)
    scores[1, 4] = float("nan")
    counts = rank_counts(scores, torch.tensor([2, 4, 6]))
    assert counts.greater[1] == 9 and counts.ties[1] == 0


def test_perfect_scorer_and_history_mask():
    scores = torch.arange(10, dtype=torch.float32).repeat(2, 1)  # item 9 scores highest
    targets = torch.tensor([7, 9])
    # user 0 has items 8 and 9 in its history: filtered, its target ranks first
    mask = history_mask(2, 10, np.array([0, 2, 2]), np.array([8, 9]), torch.device("cpu"))
    candidates = ~mask
    candidates[:, 0] = False
    metrics = summarise(rank_counts(scores, targets, candidates))
    assert metrics["hr@5"] == 1.0
    assert metrics["ndcg@5"] == 1.0 and metrics["mrr@5"] == 1.0
