"""ADT's auxiliary losses as the trainer runs them: fixed per-layer weights (retraining), or a
new random candidate before every batch (the supernet's warm-up)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...models import SequentialRecommender
from .grid_supernet import set_coordinates
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

    def forward(self, inputs: Tensor) -> Tensor:
        independence, reconstruction = self.objectives(inputs)
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

