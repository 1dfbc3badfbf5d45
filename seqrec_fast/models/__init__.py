"""Sequential recommendation backbones, one file each; ``build_model`` makes one by name.

Only :class:`ModelConfig` is imported eagerly: the rest (and torch) load on first use, so that
the command line can describe its options without importing torch."""

from __future__ import annotations

import importlib

from .config import ModelConfig

_LAZY = {
    "SequentialRecommender": ".base",
    "BERT4Rec": ".bert4rec",
    "GRU4Rec": ".gru4rec",
    "NextItNet": ".nextitnet",
    "SASRec": ".sasrec",
    "STOSA": ".stosa",
    "MODELS": ".registry",
    "build_model": ".registry",
    "model_class": ".registry",
    "resolve_defaults": ".registry",
    "ModelSpec": ".spec",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


__all__ = ["ModelConfig", *_LAZY]
