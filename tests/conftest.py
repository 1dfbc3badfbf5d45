"""Shared pytest setup: GPU tests carry the `cuda` marker and are skipped without a device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def tiny():
    """The `tiny` synthetic preset, seed 0 (read-only: tests must not change it)."""
    from seqrec_fast.data import synthesize

    return synthesize("tiny", seed=0)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The real MovieLens-100K (RecBole atomic files) beside the checkout; skipped if absent."""
    path = SHARED_DATA / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        pytest.skip(f"{path} is not present")
    return path
