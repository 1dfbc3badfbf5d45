"""Greedy block-by-block selection (Eqs. 6-7): every path of a block scored on fixed view pairs of
held-out users, in eval mode, against the ensemble target of all the block's paths; the lowest
loss wins.

For each held-out sequence one pair of views is drawn once (the loader's seed and epoch 0) and
kept: the target view through each path and the projector gives z_path, their mean over every
path is the ensemble target, and a path's score is the mean over the users of
2 - 2 cos(predictor(projector(path(online view))), ensemble)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from .network import Embedded, NASRSupernet
from .siamese import BlockObjective, distance
from .space import OPS


def every_path(supernet: NASRSupernet, stream: Embedded, layer: int, depth: int,
               prefix: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Embedded]]:
    """(path, output) for every path of ``depth`` ops from ``layer`` on, in
    :func:`~.space.block_paths` order, depth first so that paths sharing a prefix compute it once
    (4 + 16 + 64 + 256 op calls for a block of 4 layers instead of 4 x 256)."""
    if depth == 0:
        yield prefix, stream
        return
    for op in range(len(OPS)):
        child = stream.rows(slice(None))
        child.apply(supernet.layers[layer][op])
        yield from every_path(supernet, child, layer + 1, depth - 1, (*prefix, op))


@torch.no_grad()
def score_paths(supernet: NASRSupernet, objective: BlockObjective, layers_per_block: int,
                view_pairs: Iterable[Tensor]) -> np.ndarray:
    """The mean selection loss [n_paths] of every path of the objective's block (in
    :func:`~.space.block_paths` order) over ``view_pairs``: batches [2, B, L] of (target view,
    online view)."""
    supernet.eval()
    objective.eval()
    first, projector, predictor = objective.first_layer, objective.projector, objective.predictor
    totals = torch.zeros(len(OPS) ** layers_per_block, dtype=torch.float64)
    users = 0
    for pair in view_pairs:
        targets = torch.stack([projector(out) for _, out in every_path(
            supernet, objective.block_input(pair[0], grad=False), first, layers_per_block)])
        ensemble = targets.mean(0)
        online = every_path(supernet, objective.block_input(pair[1], grad=False), first, layers_per_block)
        for index, (_, out) in enumerate(online):
            totals[index] += distance(predictor(projector(out)), ensemble).double().sum()
        users += pair.shape[1]
    if users == 0:
        raise ValueError("selection has no held-out sequence to score paths on: raise held_out_users")
    return (totals / users).numpy()
