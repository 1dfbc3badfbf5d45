"""The self-supervised signal of a block supernet (Eqs. 4-5) and the selection score built on it
(Eqs. 6-7), SimSiam style.

For each of the step's sampled paths p of block k, two fresh views of every sequence: the target
z_p = projector(block_p(view_a)) under a stop-gradient, and the online prediction
q_p = predictor(projector(block_p(view_b))). Every path learns to predict the ensemble target
(the mean of z_p over the paths) from its own other view:

    loss = sum_p mean_batch (2 - 2 cos(q_p, mean_p' z_p'))

which is the squared l2 distance of the normalised vectors. The embedding and the earlier blocks
run their chosen paths before block k."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .network import Embedded, NASRSupernet


def distance(online: Tensor, target: Tensor) -> Tensor:
    """2 - 2 cos per row: the squared l2 distance between the normalised vectors."""
    return 2.0 - 2.0 * F.cosine_similarity(online, target, dim=-1)


def masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    return (x * valid).sum(1) / valid.sum(1).clamp_min(1.0)


class Projector(nn.Module):
    """light: the mean over the real positions -> Linear -> BN -> ReLU -> Linear -> BN (d -> d);
    flatten: the authors' [L * d] -> L * d -> d with the same layers."""

    def __init__(self, kind: str, width: int, length: int):
        super().__init__()
        self.kind = kind
        inputs = width if kind == "light" else width * length
        hidden = width if kind == "light" else width * length
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, width), nn.BatchNorm1d(width))

    def forward(self, stream: Embedded) -> Tensor:
        if self.kind == "light":
            return self.net(masked_mean(stream.x, stream.valid))
        return self.net(stream.x.flatten(1))


class Predictor(nn.Module):
    """d -> d -> d, BN and ReLU between (the authors' predictor)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class BlockObjective(nn.Module):
    """The trainer's objective while block ``block`` trains: it replaces the next-item loss, and
    reads the batch's contrastive views [2 * paths, B, L] (view 2p is path p's target view,
    2p + 1 its online view). ``paths`` is set before every step.

    The embedding trains with block 0; later blocks find it and the earlier blocks' chosen paths
    frozen (in eval mode, so that a block's input does not depend on dropout) unless
    ``train_earlier``."""

    def __init__(self, supernet: NASRSupernet, block: int, layers_per_block: int, chosen: Sequence[Sequence[int]],
                 projector: str, train_earlier: bool, augmentations: tuple[str, ...], augment_fraction: float,
                 paths: int, held_out_users: float):
        super().__init__()
        self.__dict__["supernet"] = supernet  # the trainer's model; not registered twice
        width, length = supernet.config.hidden_size, supernet.config.max_len
        self.projector = Projector(projector, width, length)
        self.predictor = Predictor(width)
        self.first_layer = block * layers_per_block
        self.earlier_path = tuple(op for path in chosen for op in path)
        self.earlier_trains = train_earlier or block == 0
        # What the loader draws for this objective, and the users (selection's) it leaves out.
        self.augmentations, self.augment_fraction, self.n_views = augmentations, augment_fraction, 2 * paths
        self.held_out_users = held_out_users
        self.paths: list[tuple[int, ...]] = []

    def block_input(self, inputs: Tensor, grad: bool) -> Embedded:
        with torch.set_grad_enabled(grad and self.earlier_trains):
            return self.supernet.run(self.supernet.embed(inputs), 0, self.earlier_path)

    def forward(self, views: Tensor) -> Tensor:
        if len(self.paths) * 2 != views.shape[0]:
            raise ValueError(f"{views.shape[0]} views for {len(self.paths)} paths: expected two views per path")
        supernet = self.supernet
        if self.training and not self.earlier_trains:
            for module in supernet.path_modules(self.earlier_path):
                module.eval()
        batch = views.shape[1]
        with torch.no_grad():
            target_inputs = self.block_input(views[0::2].flatten(0, 1), grad=False)
            targets = [self.projector(supernet.run(target_inputs.rows(slice(p * batch, (p + 1) * batch)),
                                                   self.first_layer, path)) for p, path in enumerate(self.paths)]
        ensemble = torch.stack(targets).mean(0)
        online_inputs = self.block_input(views[1::2].flatten(0, 1), grad=True)
        loss = views.new_zeros((), dtype=ensemble.dtype)
        for p, path in enumerate(self.paths):
            online = supernet.run(online_inputs.rows(slice(p * batch, (p + 1) * batch)), self.first_layer, path)
            loss = loss + distance(self.predictor(self.projector(online)), ensemble).mean()
        return loss
