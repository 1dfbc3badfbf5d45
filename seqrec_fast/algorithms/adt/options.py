"""ADT's search options, declared with the options engine (seqrec_fast.options) so that the
command line and a run directory's YAML read them alike; torch-free."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...nas.evolution import EvolutionConfig
from ...options import option, to_dict
from .space import INDEPENDENCE_GRID, RECONSTRUCTION_GRID, ADTSpace

CANDIDATE_EVERY = ("epoch", "batch")
BACKBONES = ("sasrec", "bert4rec", "stosa")  # Transformer backbones with attention heads
# Training windows when the options name none: the objectives read every position, so strided
# windows could not prune the final block and would cost a full forward per window.
WINDOW = "sliding"


@dataclass(frozen=True)
class ADTConfig(EvolutionConfig):
    """Search options: the evolution's (paper defaults, inherited) plus ADT's warm-up and the
    authors' grids."""

    warmup_epochs: int = option(20, help="epochs of supernet warm-up before the evolution")
    candidate_every: str = option("epoch", choices=CANDIDATE_EVERY,
                                  help="a new random warm-up candidate every epoch or every batch")
    reconstruction_grid: tuple[float, ...] = option(
        RECONSTRUCTION_GRID, help="the M values a layer's reconstruction-loss weight is interpolated between")
    independence_grid: tuple[float, ...] = option(
        INDEPENDENCE_GRID, help="the M values a layer's independence-loss weight is interpolated between")

    def __post_init__(self) -> None:
        super().__post_init__()  # population and the probabilities
        if self.warmup_epochs < 1:
            raise ValueError(f"warmup_epochs must be >= 1, got {self.warmup_epochs}")
        if self.candidate_every not in CANDIDATE_EVERY:
            raise ValueError(f"candidate_every must be one of {CANDIDATE_EVERY}, got {self.candidate_every!r}")

    def evolution(self) -> EvolutionConfig:
        return EvolutionConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EvolutionConfig)})

    def space(self, num_layers: int) -> ADTSpace:
        return ADTSpace.build(num_layers, self.reconstruction_grid, self.independence_grid)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
