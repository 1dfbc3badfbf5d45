"""Errors raised for bad input data and bad caches."""

from __future__ import annotations

from .._loader import CacheError

__all__ = ["CacheError", "DataFormatError"]


class DataFormatError(ValueError):
    """An input file does not hold what was expected; the message names the file, the row or
    column, and what was expected."""
