"""Backbones by name."""

from __future__ import annotations

import dataclasses

from .base import SequentialRecommender
from .bert4rec import BERT4Rec
from .config import ModelConfig
from .gru4rec import GRU4Rec
from .nextitnet import NextItNet
from .sasrec import SASRec
from .spec import ModelSpec
from .stosa import STOSA

MODELS: dict[str, type[SequentialRecommender]] = {
    "bert4rec": BERT4Rec,
    "gru4rec": GRU4Rec,
    "nextitnet": NextItNet,
    "sasrec": SASRec,
    "stosa": STOSA,
}


def model_class(name: str) -> type[SequentialRecommender]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None


def resolve_defaults(config: ModelConfig) -> ModelConfig:
    """The config with its unset fields (-1, or empty dilations) replaced by the backbone's
    defaults."""
    defaults = model_class(config.name).defaults
    return dataclasses.replace(config, **{name: defaults[name] for name in config.unset_fields(defaults)})


def build_model(config: ModelConfig | ModelSpec, n_items: int) -> SequentialRecommender:
    """The backbone a config describes, or the model of a spec (a search's result): the model
    the spec's algorithm builds from what it searched, or else the spec's backbone."""
    if isinstance(config, ModelSpec):
        if config.algorithm:
            from ..algorithms import registry

            searched = registry.get(config.algorithm).build_model(config, n_items)
            if searched is not None:
                return searched
        config = config.model
    return model_class(config.name)(resolve_defaults(config), n_items)
