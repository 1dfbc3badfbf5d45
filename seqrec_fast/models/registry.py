"""Backbones by name."""

from __future__ import annotations

from .base import SequentialRecommender
from .bert4rec import BERT4Rec
from .config import ModelConfig
from .gru4rec import GRU4Rec
from .nextitnet import NextItNet
from .sasrec import SASRec
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


def build_model(config: ModelConfig, n_items: int) -> SequentialRecommender:
    return model_class(config.name)(config, n_items)
