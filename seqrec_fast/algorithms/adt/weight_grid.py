"""Continuous coordinates in [0, 1] mapped onto grids of values (ADT, Eqs. 14-20).

A grid of M values sits at the points k/(M-1), k = 0..M-1. A coordinate c picks the cell
[m/(M-1), (m+1)/(M-1)] that holds it and the fraction s inside it; the value is the linear blend of
the cell's two ends. At a grid point the result is exactly that point's value. The supernet's 2-D
grid of candidates uses the same cells, blended bilinearly (`seqrec_fast.ops.grid_corners`).

The paper writes the cells as [m/M, (m+1)/M) over M+1 values; the authors' grids have M = 6 values
and M x M supernet candidates, so both the weights and the supernet use the M-point form here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def check_coordinate(c: float, what: str = "coordinate") -> float:
    if not (isinstance(c, (int, float)) and math.isfinite(c) and 0.0 <= c <= 1.0):
        raise ValueError(f"{what} must be a number in [0, 1], got {c!r}")
    return float(c)


def cell(c: float, points: int) -> tuple[int, float]:
    """(m, s): the cell index m in [0, points-2] holding c, and c's fraction s in [0, 1] of it."""
    if points < 2:
        raise ValueError(f"a grid needs at least 2 points, got {points}")
    position = check_coordinate(c) * (points - 1)
    m = min(int(position), points - 2)  # c = 1 falls in the last cell with s = 1
    return m, position - m


@dataclass(frozen=True)
class WeightGrid:
    """Increasing values at evenly spaced coordinates; `value(c)` interpolates piecewise-linearly."""

    values: tuple[float, ...]
    name: str = "grid"

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        if len(values) < 2:
            raise ValueError(f"{self.name}: a weight grid needs at least 2 values, got {list(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{self.name}: weight grid values must be finite, got {list(values)}")
        bad = [i for i in range(1, len(values)) if values[i] <= values[i - 1]]
        if bad:
            i = bad[0]
            raise ValueError(
                f"{self.name}: weight grid values must be strictly increasing, but value {i} "
                f"({values[i]}) <= value {i - 1} ({values[i - 1]}) in {list(values)}"
            )
        object.__setattr__(self, "values", values)

    @property
    def points(self) -> int:
        return len(self.values)

    def value(self, c: float) -> float:
        m, s = cell(c, self.points)
        return (1.0 - s) * self.values[m] + s * self.values[m + 1]

