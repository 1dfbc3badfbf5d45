"""ADT's search space: a candidate c in [0, 1]^{2L} and what it means (Eqs. 14-20).

c = [c_rec^1, c_ind^1, ..., c_rec^L, c_ind^L] (the paper's order). Layer l's pair is both the
supernet coordinates of that layer (axis 0: reconstruction, axis 1: independence) and, through
the two weight grids, the layer's loss weights lambda_rec^l and lambda_ind^l. Keeping one mapping
here is what prevents the authors' layer-index mix-ups between weights and layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .weight_grid import WeightGrid, check_coordinate

# The authors' grids (M = 6, non-uniform). Published lambdas for ML-1M exceed 1e-2: the grids are
# options, not constants.
RECONSTRUCTION_GRID = (0.0, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2)
INDEPENDENCE_GRID = (0.0, 1e-4, 5e-4, 1e-3, 1.5e-3, 2e-3)


@dataclass(frozen=True)
class LossWeights:
    """Per-layer weights of the two auxiliary losses (Eq. 13), layer 1 first."""

    reconstruction: tuple[float, ...]
    independence: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"reconstruction": list(self.reconstruction), "independence": list(self.independence)}

    @classmethod
    def from_dict(cls, data: dict, num_layers: int, where: str = "loss weights") -> LossWeights:
        weights = {}
        for key in ("reconstruction", "independence"):
            values = data.get(key) if isinstance(data, dict) else None
            if not isinstance(values, list) or len(values) != num_layers or not all(
                    isinstance(v, (int, float)) and v >= 0 for v in values):
                raise ValueError(f"{where}: {key!r} must be a list of {num_layers} non-negative numbers "
                                 f"(one per layer), got {values!r}")
            weights[key] = tuple(float(v) for v in values)
        return cls(**weights)


@dataclass(frozen=True)
class ADTSpace:
    num_layers: int
    reconstruction: WeightGrid
    independence: WeightGrid

    @classmethod
    def build(cls, num_layers: int, reconstruction_grid: Sequence[float] = RECONSTRUCTION_GRID,
              independence_grid: Sequence[float] = INDEPENDENCE_GRID) -> ADTSpace:
        reconstruction = WeightGrid(tuple(reconstruction_grid), name="reconstruction_grid")
        independence = WeightGrid(tuple(independence_grid), name="independence_grid")
        if reconstruction.points != independence.points:
            raise ValueError(
                f"reconstruction_grid has {reconstruction.points} values and independence_grid "
                f"{independence.points}: the supernet is an M x M grid, so both need the same M")
        if num_layers < 1:
            raise ValueError(f"ADT needs at least one layer, got {num_layers}")
        return cls(num_layers, reconstruction, independence)

    @property
    def grid_size(self) -> int:
        return self.reconstruction.points

    @property
    def dims(self) -> int:
        return 2 * self.num_layers

    def check(self, candidate: Sequence[float]) -> tuple[float, ...]:
        if len(candidate) != self.dims:
            raise ValueError(f"an ADT candidate for {self.num_layers} layers has {self.dims} coordinates "
                             f"[c_rec^1, c_ind^1, ...], got {len(candidate)}")
        return tuple(check_coordinate(c, f"candidate coordinate {i}") for i, c in enumerate(candidate))

    def coordinates(self, candidate: Sequence[float]) -> list[tuple[float, float]]:
        """Per layer (c_rec^l, c_ind^l): the supernet coordinates of layer l."""
        c = self.check(candidate)
        return [(c[2 * layer], c[2 * layer + 1]) for layer in range(self.num_layers)]

    def weights(self, candidate: Sequence[float]) -> LossWeights:
        pairs = self.coordinates(candidate)
        return LossWeights(
            reconstruction=tuple(self.reconstruction.value(rec) for rec, _ in pairs),
            independence=tuple(self.independence.value(ind) for _, ind in pairs),
        )
