"""ADT, the Adaptive Disentangled Transformer (KDD'23): search per-layer weights of two auxiliary
losses (head independence, input reconstruction), then retrain the backbone with them.

    options.py         the search's options (evolution, warm-up, the weight grids)
    space.py           a candidate in [0, 1]^{2L}: supernet coordinates and loss weights
    weight_grid.py     continuous coordinates onto grids of values
    grid_supernet.py   the M x M grid supernet built from a backbone
    objectives.py      the two auxiliary losses, read from the backbone's forward
    weighted_losses.py those losses as the trainer runs them (warm-up, retraining)
    search.py          the search, derive and retraining

Importing this package stays torch-free: the command line reads :data:`ALGORITHM` for --help."""

from __future__ import annotations

import dataclasses

from ..base import Algorithm
from .options import BACKBONES, WINDOW, ADTConfig


class ADT(Algorithm):
    name = "adt"
    summary = "ADT (KDD'23): per-layer weights of two auxiliary losses by differential evolution on a grid supernet"
    implementation = "seqrec_fast.algorithms.adt.search"
    options = ADTConfig
    backbones = BACKBONES
    default_window = WINDOW

    def fast_dev_run(self, options: ADTConfig) -> ADTConfig:
        # The smallest evolution the options allow: one warm-up epoch, the initial population
        # of 3 and one round.
        return dataclasses.replace(options, warmup_epochs=1, population=3, n_crossover=1, n_mutation=1, rounds=1)

    def describe(self, result) -> str:
        weights = result.architecture
        kinds = list(weights)
        lines = ["layer" + "".join(k.rjust(16) for k in kinds)]
        for layer in range(len(weights[kinds[0]])):
            lines.append(f"{layer + 1:>5}" + "".join(f"{weights[k][layer]:16.3g}" for k in kinds))
        return "\n".join(lines)


ALGORITHM = ADT()
