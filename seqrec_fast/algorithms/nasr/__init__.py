"""NASR (WWW'22): a deep hybrid of Transformer and TCN layers, one op per layer chosen block by
block: each block's supernet trained with SimSiam-style self-supervision, every path of the block
scored on held-out users, the best kept greedily; the hybrid retrained from scratch.

    options.py    the search's options
    space.py      the four ops, blocks and architectures as text (torch-free)
    network.py    the ops, the supernet and the derived hybrid
    siamese.py    the block supernet's self-supervised objective
    selection.py  scoring every path of a block
    search.py     the search, derive and retraining
    plots.py      the chosen table, block losses

Importing this package stays torch-free: the command line reads :data:`ALGORITHM` for --help."""

from __future__ import annotations

import dataclasses

from ..base import Algorithm
from .options import NASRConfig
from .space import MODEL_DEFAULTS, describe_layers


class NASR(Algorithm):
    name = "nasr"
    summary = "NASR (WWW'22): a 16-layer hybrid of Transformer and TCN layers, block-wise self-supervised supernets"
    implementation = "seqrec_fast.algorithms.nasr.search"
    options = NASRConfig
    backbones = ("sasrec",)  # the model configuration carries width, length and dropout; the ops are its own
    # The retraining's windows: on ml-100k a hybrid reached the same validation NDCG@10 on
    # disjoint windows as on strided ones at a quarter of the time per epoch
    # (docs/experiments.md). The supernets keep their own strided windows.
    default_window = "sliding"
    model_defaults = MODEL_DEFAULTS

    def build_model(self, spec, n_items: int):
        return self._implementation().build_hybrid(spec, n_items)

    def fast_dev_run(self, options: NASRConfig) -> NASRConfig:
        return dataclasses.replace(options, block_epochs=1)

    def headline(self, result, train) -> str:
        if not result.evaluations:
            return f"nasr on {train.data}: the fixed hybrid, no search"
        return (f"nasr on {train.data}: {result.evaluations} block paths scored, lowest selection loss per block "
                f"kept (supernets {result.warmup_s:.0f} s, supernets and selection {result.search_s:.0f} s)")

    def describe(self, result) -> str:
        found = result.architecture
        lines = [f"hybrid of {len(found['layers'])} layers at width {found['width']}: {describe_layers(found['layers'])}"]
        for k, block in enumerate(found.get("blocks", [])):
            lines.append(f"block {k + 1}: {', '.join(block['chosen'])} (selection loss {block['loss']:.4f}, "
                         f"trained {block['train_s']:.0f} s, scored {block['selection_s']:.0f} s)")
        return "\n".join(lines)


ALGORITHM = NASR()
