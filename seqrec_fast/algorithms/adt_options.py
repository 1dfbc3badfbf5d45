"""ADT's search options: a dataclass loadable from a run directory's YAML and from
``--key value`` flags, torch-free so that the command line can list them cheaply."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..nas.evolution import EvolutionConfig
from .adt_space import INDEPENDENCE_GRID, RECONSTRUCTION_GRID, ADTSpace

CANDIDATE_EVERY = ("epoch", "batch")


@dataclass(frozen=True)
class ADTConfig(EvolutionConfig):
    """Search options: the evolution's (paper defaults, inherited) plus ADT's warm-up and the
    authors' grids."""

    warmup_epochs: int = 20
    candidate_every: str = "epoch"  # a new random warm-up candidate every epoch or every batch
    reconstruction_grid: tuple[float, ...] = RECONSTRUCTION_GRID
    independence_grid: tuple[float, ...] = INDEPENDENCE_GRID

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
        data = dataclasses.asdict(self)
        data["reconstruction_grid"] = list(self.reconstruction_grid)
        data["independence_grid"] = list(self.independence_grid)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ADTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ADT option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(known))}")
        values = dict(data)
        for key in ("reconstruction_grid", "independence_grid"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ADTConfig)]


def parse_adt_options(values: dict[str, Any]) -> ADTConfig:
    """``{key: text or value}`` -> ADTConfig; errors name the option."""
    types = typing.get_type_hints(ADTConfig)
    parsed = {}
    for key, value in values.items():
        if key not in types:
            raise ValueError(f"unknown ADT option {key!r}; valid options: {', '.join(option_names())}")
        parsed[key] = _convert(key, value, types[key])
    try:
        return ADTConfig(**parsed)
    except ValueError as error:
        raise ValueError(f"ADT options: {error}") from None


def _convert(key: str, value: Any, annotation) -> Any:
    flag = "--" + key.replace("_", "-")
    try:
        if typing.get_origin(annotation) is tuple:
            items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
            return tuple(float(item) for item in items)
        if annotation is int and not isinstance(value, bool):
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        raise ValueError(f"{flag}: unsupported option type {annotation}")
    expected = {int: "an integer", float: "a number"}.get(annotation, "a comma-separated list of numbers")
    raise ValueError(f"{flag}: expected {expected}, got {value!r}")
