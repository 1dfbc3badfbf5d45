"""ModelSpec: a JSON-able description of a model the project can build, so that a run
directory's model is rebuilt from its spec alone.

``model`` is the backbone's configuration (widths, depths, dropout: every :class:`ModelConfig`
field, defaults resolved); ``searched`` holds what a search chose on top of it, as JSON data
named by the algorithm that reads it (ADT: the per-layer auxiliary loss weights its retraining
adds). ``models.build_model(spec, n_items)`` builds the model the spec describes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic_io import atomic_write_text
from .config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    model: ModelConfig
    algorithm: str = ""  # the search that chose ``searched`` ("" for a plain backbone)
    searched: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        model = dataclasses.asdict(self.model)
        model["dilations"] = list(model["dilations"])
        return {"model": model, "algorithm": self.algorithm, "searched": self.searched}

    @classmethod
    def from_dict(cls, data: Any, where: str = "model spec") -> ModelSpec:
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ValueError(f"{where}: expected an object with a 'model' object (a backbone configuration)")
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(data["model"]) - known)
        if unknown:
            raise ValueError(f"{where}: unknown model field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        model = {**data["model"]}
        if "dilations" in model:
            model["dilations"] = tuple(model["dilations"])
        searched = data.get("searched", {})
        if not isinstance(searched, dict):
            raise ValueError(f"{where}: 'searched' must be an object, got {searched!r}")
        return cls(ModelConfig(**model), str(data.get("algorithm", "")), searched)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()), where=str(path))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None

