"""An exponential moving average of the trained weights, for validation, best.pt and the test.

On ml-100k SASRec's validation NDCG@10 moves by about 0.003 from one epoch to the next, as much
as 20 epochs of its slow rise, so early stopping picks the epoch whose noise favoured validation.
Decay 0.999 (about 2.6 epochs there) halved that epoch-to-epoch spread, but did not raise the
test score (README, Training windows), so it is an option, off by default.

torch.optim.swa_utils.AveragedModel does the same without the ramp below, and keeps its update
count in a device tensor that the ramp would read back every step."""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``model``'s weights averaged with decay ``decay`` per optimizer step, in a copy of it
    (``.model``, checkpointed through its state_dict).

    The effective decay ramps up as (1 + step) / (10 + step) until it reaches ``decay``, so
    that the first epochs' average is not dominated by the random initialisation. Buffers are
    copied, not averaged."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")  # config.validate names the key
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)
        self._source = list(model.parameters())
        self._averaged = list(self.model.parameters())
        self._source_buffers = list(model.buffers())
        self._averaged_buffers = list(self.model.buffers())

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the trained weights after optimizer step number ``step`` (0-based)."""
        torch._foreach_lerp_(self._averaged, self._source, 1.0 - self.decay_at(step))
        for averaged, source in zip(self._averaged_buffers, self._source_buffers):
            averaged.copy_(source)
