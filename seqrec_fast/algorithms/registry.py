"""Algorithms by name. A built-in algorithm is one line of ``BUILT_IN`` (its package, imported on
first use); code outside the package adds its own with :func:`register`."""

from __future__ import annotations

import importlib

from .base import Algorithm

BUILT_IN: dict[str, str] = {
    "adt": "seqrec_fast.algorithms.adt",
    "adarec": "seqrec_fast.algorithms.adarec",
    "nasr": "seqrec_fast.algorithms.nasr",
    "easrec": "seqrec_fast.algorithms.easrec",
    "canet": "seqrec_fast.algorithms.canet",
}
_REGISTERED: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Makes ``algorithm`` available to ``seqrec-fast search NAME`` and ``retrain`` in this
    process; a name already taken is refused."""
    if not isinstance(algorithm, Algorithm):
        raise TypeError(f"register() takes an Algorithm instance, got {type(algorithm).__name__}")
    if algorithm.name in BUILT_IN or algorithm.name in _REGISTERED:
        raise ValueError(f"an algorithm named {algorithm.name!r} is already registered")
    _REGISTERED[algorithm.name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def names() -> list[str]:
    return [*BUILT_IN, *_REGISTERED]


def get(name: str) -> Algorithm:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILT_IN:
        return importlib.import_module(BUILT_IN[name]).ALGORITHM
    raise ValueError(f"unknown search algorithm {name!r}; registered: {', '.join(names())}")
