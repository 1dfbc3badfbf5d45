"""ADT's auxiliary losses as the trainer runs them (its callbacks): fixed per-layer weights
(retraining), or a new random candidate before every batch (the supernet's warm-up)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...models import ModelSpec, SequentialRecommender, build_model
from ...train.callbacks import TrainerCallbacks
from .grid_supernet import set_coordinates, to_grid_supernet
from .objectives import DisentanglementObjectives
from .space import ADTSpace, LossWeights


class WeightedObjectives(nn.Module):
    """Eq. 13's auxiliary part, sum_l lambda_ind^l L_ind^l + lambda_rec^l L_rec^l, as the
    trainer's auxiliary loss."""

    def __init__(self, model: SequentialRecommender, weights: LossWeights):
        super().__init__()
        self.objectives = DisentanglementObjectives(model)
        layers = self.objectives.num_layers
        if len(weights.reconstruction) != layers:
            raise ValueError(f"{layers} layers but {len(weights.reconstruction)} weights per objective")
        self.register_buffer("reconstruction", torch.zeros(layers), persistent=False)
        self.register_buffer("independence", torch.zeros(layers), persistent=False)
        self.set_weights(weights)

    def set_weights(self, weights: LossWeights) -> None:
        self.reconstruction.copy_(torch.tensor(weights.reconstruction))
        self.independence.copy_(torch.tensor(weights.independence))

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        independence, reconstruction = self.objectives(inputs)  # the targets play no part
        return (self.independence * independence).sum() + (self.reconstruction * reconstruction).sum()


class RandomCandidates(WeightedObjectives):
    """The warm-up: before each batch, the candidate of (seed, epoch) -- or (seed, epoch, batch)
    -- sets the supernet's coordinates and the loss weights (paper, Sec. 3.3)."""

    def __init__(self, model: SequentialRecommender, space: ADTSpace, seed: int, every: str):
        super().__init__(model, space.weights([0.0] * space.dims))
        self._apply_coordinates: Callable[[Sequence], None] = lambda pairs: set_coordinates(model, pairs)
        self.space, self.seed, self.every = space, seed, every

    def candidate(self, epoch: int, batch: int) -> list[float]:
        key = [self.seed, epoch] + ([batch] if self.every == "batch" else [])
        return np.random.default_rng(key).random(self.space.dims).tolist()

    def start_batch(self, epoch: int, batch: int) -> None:
        candidate = self.candidate(epoch, batch)
        self._apply_coordinates(self.space.coordinates(candidate))
        self.set_weights(self.space.weights(candidate))


class WarmupCallbacks(TrainerCallbacks):
    """The warm-up: the grid supernet of the configured backbone, a random candidate per batch."""

    def __init__(self, space: ADTSpace, seed: int, every: str):
        self.space, self.seed, self.every = space, seed, every
        self.candidates: RandomCandidates | None = None

    def build_model(self, config, n_items: int) -> SequentialRecommender:
        return build_supernet(config, n_items, self.space.grid_size)

    def auxiliary(self, model: SequentialRecommender) -> RandomCandidates:
        self.candidates = RandomCandidates(model, self.space, self.seed, self.every)
        return self.candidates

    def before_batch(self, epoch: int, index: int) -> None:
        self.candidates.start_batch(epoch, index)


class RetrainCallbacks(TrainerCallbacks):
    """Retraining: the spec's model with its searched loss weights."""

    def __init__(self, spec: ModelSpec, weights: LossWeights):
        self.spec, self.weights = spec, weights

    def build_model(self, config, n_items: int) -> SequentialRecommender:
        return build_model(self.spec, n_items)

    def auxiliary(self, model: SequentialRecommender) -> WeightedObjectives:
        return WeightedObjectives(model, self.weights)


def build_supernet(config, n_items: int, grid_size: int) -> SequentialRecommender:
    return to_grid_supernet(build_model(config.model, n_items), grid_size)
