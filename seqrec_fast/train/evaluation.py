"""Evaluation over a split: full ranking of every item (history filtered by default) or, as a
labelled option, ranking against the loader's fixed sampled negatives. Under torchrun each rank
ranks its shard of users and the per-user counts are gathered, so the metrics are exactly those
of a single process. ``evaluate_split`` and ``evaluate_checkpoint`` score a split as a run's
configuration says (protocol, ties)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..models import ModelConfig, ModelSpec, SequentialRecommender, build_model
from . import distributed
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .metrics import DEFAULT_CUTOFFS, RankCounts, rank_counts, summarise


class Popularity(torch.nn.Module):
    """The baseline every model must beat: ranks items by their training-split count."""

    def __init__(self, item_counts):
        super().__init__()
        self.register_buffer("counts", torch.as_tensor(np.asarray(item_counts), dtype=torch.float32))

    def predict(self, inputs: Tensor) -> Tensor:
        return self.counts.to(inputs.device).expand(len(inputs), -1)


def protocol_label(filter_history: bool, sampled_negatives: int, sampler: str) -> str:
    if sampled_negatives:
        return f"sampled: target vs {sampled_negatives} fixed {sampler} negatives"
    return "full ranking, history " + ("filtered" if filter_history else "kept")


def history_mask(batch_size: int, n_columns: int, offsets: np.ndarray, items: np.ndarray, device) -> Tensor:
    """Boolean [B, V], True at every item in each user's history."""
    mask = torch.zeros(batch_size, n_columns, dtype=torch.bool, device=device)
    lengths = torch.from_numpy(np.diff(np.asarray(offsets, dtype=np.int64)))
    rows = torch.repeat_interleave(torch.arange(batch_size), lengths)
    mask[rows.to(device), torch.from_numpy(np.asarray(items, dtype=np.int64)).to(device)] = True
    return mask


def full_ranking_candidates(n_rows: int, n_columns: int, history_offsets: np.ndarray, history_items: np.ndarray,
                            filter_history: bool, device) -> Tensor:
    """Boolean [B, V], True at the items a full ranking ranks: every item but padding, and,
    with ``filter_history``, none of each row's history. Evaluation and recommendation both
    rank these."""
    if filter_history:
        candidates = ~history_mask(n_rows, n_columns, history_offsets, history_items, device)
    else:
        candidates = torch.ones(n_rows, n_columns, dtype=torch.bool, device=device)
    candidates[:, 0] = False  # padding
    return candidates


def batch_counts(model: SequentialRecommender, batch: dict, device: torch.device, filter_history: bool,
                 sampled: bool) -> RankCounts:
    inputs = torch.from_numpy(batch["inputs"]).to(device)
    targets = torch.from_numpy(batch["targets"]).to(device)
    scores = model.predict(inputs).float()
    if sampled:
        candidate_items = torch.cat([targets[:, None], torch.from_numpy(batch["negatives"]).to(device)], dim=1)
        return rank_counts(scores.gather(1, candidate_items), torch.zeros_like(targets))
    candidates = full_ranking_candidates(len(targets), scores.shape[1], batch["history_offsets"],
                                         batch["history_items"], filter_history, device)
    return rank_counts(scores, targets, candidates)


@torch.no_grad()
def evaluate(model: SequentialRecommender, loader, device: torch.device, *, filter_history: bool = True,
             sampled: bool = False, cutoffs=DEFAULT_CUTOFFS, ties: str = "pessimistic") -> dict[str, float]:
    """Mean metrics over every user of the split (gathered over ranks under torchrun)."""
    _, counts = rank_users(model, loader, device, filter_history=filter_history, sampled=sampled)
    return summarise(counts, cutoffs, ties)


@torch.no_grad()
def rank_users(model: SequentialRecommender, loader, device: torch.device, *, filter_history: bool = True,
               sampled: bool = False) -> tuple[np.ndarray, RankCounts]:
    """Every user of the split (gathered over ranks under torchrun), ascending, and the counts
    that place its target among the candidates: what per-user comparisons of two runs need.

    Runs in fp32 even when training used bf16 autocast: bf16 scores tie often, and ties are
    (rightly) never resolved in the model's favour."""
    was_training = model.training
    model.eval()
    users, parts = [], []
    try:
        for batch in loader:
            parts.append(batch_counts(model, batch, device, filter_history, sampled))
            users.append(np.asarray(batch["users"], dtype=np.int64))
    finally:
        model.train(was_training)
    counts = RankCounts.concatenate(parts)
    user_ids = np.concatenate(users) if users else np.zeros(0, dtype=np.int64)
    if distributed.world_size() > 1:
        gathered = distributed.all_gather_objects((user_ids, counts))
        user_ids = np.concatenate([u for u, _ in gathered])
        counts = RankCounts.concatenate([c for _, c in gathered])
    order = np.argsort(user_ids, kind="stable")  # a fixed order makes the float sums rank-independent
    return user_ids[order], RankCounts(counts.greater[order], counts.ties[order], counts.n_negatives[order])


def rank_split(model: SequentialRecommender, dataset, config: TrainConfig, split: str,
               device: torch.device):
    """Users and rank counts of ``model`` on one split, as configured (protocol), over this
    rank's shard gathered across ranks."""
    loader = dataset.eval_loader(
        split=split, batch_size=config.eval_batch_size, max_len=config.model.max_len,
        n_sampled_negatives=config.eval_negatives, negative_sampler=config.eval_sampler, seed=config.seed,
        rank=distributed.rank(), world_size=distributed.world_size())
    return rank_users(model, loader, device, filter_history=config.filter_history, sampled=config.eval_negatives > 0)


def evaluate_split(model: SequentialRecommender, dataset, config: TrainConfig, split: str,
                   device: torch.device) -> dict[str, float]:
    """Metrics of ``model`` on one split, as configured (protocol, ties)."""
    return summarise(rank_split(model, dataset, config, split, device)[1], ties=config.ties)


def load_trained_model(spec: ModelConfig | ModelSpec, checkpoint: Path, n_items: int) -> SequentialRecommender:
    """The model ``spec`` describes with the weights of ``checkpoint`` (best.pt), on the CPU."""
    state = load_checkpoint(checkpoint)
    if int(state["n_items"]) != n_items:
        raise ValueError(f"{checkpoint} was trained with {state['n_items']} items but the dataset has {n_items}")
    model = build_model(spec, n_items)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        name = (spec.model if isinstance(spec, ModelSpec) else spec).name
        raise ValueError(f"{checkpoint} does not fit the {name} model its run describes "
                         f"(written by another version?): {str(error).splitlines()[1].strip()}") from None
    return model


def evaluate_checkpoint(config: TrainConfig, dataset, checkpoint: Path, splits=("valid", "test"),
                        spec: ModelSpec | None = None) -> dict[str, Any]:
    """Load a run's weights and evaluate them (under torchrun too); ``spec``: the searched model
    the weights belong to, when the configuration's backbone is not it."""
    device = distributed.resolve_device(config.device)
    distributed.setup(device)
    model = load_trained_model(spec or config.model, checkpoint, dataset.n_items).to(device)
    metrics = {split: evaluate_split(model, dataset, config, split, device) for split in splits}
    return {"model": config.model.name, "checkpoint": str(checkpoint),
            "protocol": protocol_label(config.filter_history, config.eval_negatives, config.eval_sampler), **metrics}
