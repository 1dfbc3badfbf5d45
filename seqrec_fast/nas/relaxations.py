"""Continuous relaxations of a discrete choice among K candidates (DARTS-style mixed
operations): weights over the candidates from architecture logits ``alpha`` [..., K].

    softmax(alpha, temperature)                  DARTS: every candidate, weighted
    gumbel_softmax(alpha, temperature, hard)     a sample: soft weights, or (hard) a one-hot
                                                 forward with the soft weights' gradient
    keyed_generator(device, *key)                the generator of one draw, seeded by where it
                                                 happens (seed, stream, epoch, batch)
    TemperatureSchedule                          temperature annealed over training steps
    mix(weights, outputs)                        the weighted sum of the candidates' outputs

The Gumbel noise comes from an explicit ``torch.Generator`` so that a search's draws are a
function of its seed, not of whatever else consumed torch's global generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def softmax(alpha: Tensor, temperature: float = 1.0) -> Tensor:
    _check_temperature(temperature)
    return torch.softmax(alpha / temperature, dim=-1)


def gumbel_softmax(alpha: Tensor, temperature: float, hard: bool = False,
                   generator: torch.Generator | None = None) -> Tensor:
    """softmax((alpha + g) / temperature) with g ~ Gumbel(0, 1); ``hard`` returns the one-hot of
    its argmax in the forward pass and the soft weights' gradient in the backward pass
    (straight-through), so a hard sample runs one candidate yet trains the logits."""
    _check_temperature(temperature)
    uniform = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
    tiny = torch.finfo(alpha.dtype).tiny
    gumbel = -torch.log((-torch.log(uniform.clamp_min(tiny))).clamp_min(tiny))
    soft = torch.softmax((alpha + gumbel) / temperature, dim=-1)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


# The key after a search's seed in a bilevel search: the weight steps' samples and the
# architecture steps' are separate streams.
WEIGHT_STREAM, ARCHITECTURE_STREAM = 0, 1


def keyed_generator(device: torch.device, *key: int) -> torch.Generator:
    """A generator seeded by the non-negative integers ``key`` (a search's seed, a stream, an
    epoch, a batch): a search's samples are then functions of where they are drawn, and a search
    resumed after a kill draws what the uninterrupted one drew, with no state of its own."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1))
    return generator


def mix(weights: Tensor, outputs: list[Tensor]) -> Tensor:
    """sum_k weights[..., k] * outputs[k]: the mixed operation's output."""
    if weights.shape[-1] != len(outputs):
        raise ValueError(f"{weights.shape[-1]} weights for {len(outputs)} candidate outputs")
    return sum(weights[..., k] * output for k, output in enumerate(outputs))


@dataclass(frozen=True)
class TemperatureSchedule:
    """The temperature at a training step: from ``start`` at step 0 to ``end`` at ``steps`` (and
    after), exponentially (a constant factor per step, the usual Gumbel annealing) or linearly."""

    start: float = 1.0
    end: float = 0.1
    steps: int = 1000
    kind: str = "exponential"

    def __post_init__(self) -> None:
        _check_temperature(self.start)
        _check_temperature(self.end)
        if self.steps < 1:
            raise ValueError(f"a temperature schedule needs steps >= 1, got {self.steps}")
        if self.kind not in ("exponential", "linear"):
            raise ValueError(f"temperature schedule kind must be 'exponential' or 'linear', got {self.kind!r}")

    def __call__(self, step: int) -> float:
        progress = min(max(step, 0), self.steps) / self.steps
        if self.kind == "linear":
            return self.start + (self.end - self.start) * progress
        return math.exp(math.log(self.start) + (math.log(self.end) - math.log(self.start)) * progress)


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"a temperature must be a finite number > 0, got {temperature}")
