"""How an algorithm reaches into training: the one protocol the trainer calls, so that the
trainer knows nothing of any algorithm.

A :class:`TrainerCallbacks` subclass overrides what it needs; the base class trains the
configured backbone alone. The trainer calls, in this order:

    build_model(config, n_items)   once, after seeding: the model to train (a supernet, or the
                                   model of a search's ModelSpec) instead of the backbone
    objective(model)               once: a module that replaces the backbone's loss altogether
                                   (NASR's self-supervised block supernet), called as
                                   ``objective(views)`` on the batch's contrastive views
                                   [V, B, L], which the loader draws as the module's
                                   ``augmentations``, ``augment_fraction`` and ``n_views`` say,
                                   from the users outside its ``held_out_users`` share (0: all);
                                   trained, checkpointed and resumed with the model
    auxiliary(model)               once: a module whose output, ``auxiliary(inputs, targets)``
                                   after each forward of ``model`` (the batch's windows and next
                                   items [B, L], 0 where none), is added to the loss; it reads what
                                   the forward computed (the model's own loss terms, ADT's
                                   objectives, CANet's route probabilities) and is trained,
                                   checkpointed and resumed with the model
    schedule(epochs, steps)        once, when the loaders are built: the run's epochs and optimizer
                                   steps per epoch (a fast dev run's, too), for schedules over
                                   the whole run (EASRec's temperature)
    before_batch(epoch, index)     before every training batch (a warm-up's random candidate)
    loss_weight()                  once: the weight of the backbone's own loss (AdaRec's 1 - gamma)
    architecture(model)            once: an :class:`ArchitectureStep` (or None), an optimizer over
                                   architecture parameters stepped every ``every`` training steps
                                   on a batch from a held-out source, never on the batch the
                                   weights were trained on
    after_epoch(epoch)             after every epoch: values added to that epoch's metrics line

A parameter the model leaves with ``requires_grad`` False is never stepped (NASR's frozen
earlier blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the algorithms' options read ARCHITECTURE_SOURCES for --help
    from torch import Tensor, nn

ARCHITECTURE_SOURCES = ("held_out", "valid")


@dataclass
class ArchitectureStep:
    """An extra optimizer over ``parameters`` (which the weights' optimizer then leaves alone),
    stepped after every ``every``-th training step on the next batch of its source:

        held_out   training windows of a seed-fixed ``held_out_users`` share of the users, whom the
                   weights' batches then leave out
        valid      the validation split, one prediction per user

    ``loss(train_step, inputs, targets, negatives, index)`` is the architecture's loss on one such
    batch (``train_step``: the trainer's model + loss module; ``index``: the architecture steps
    taken before this one). The trainer steps the parameters with AdamW at ``lr(steps)``, where
    ``steps`` is the number of architecture steps the run will take."""

    parameters: list[nn.Parameter]
    every: int
    loss: Callable[[nn.Module, Tensor, Tensor, Tensor | None, int], Tensor]
    lr: Callable[[int], float]
    weight_decay: float = 0.0
    source: str = "held_out"
    held_out_users: float = 0.1

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"an architecture step every {self.every} steps: expected >= 1")
        if self.source not in ARCHITECTURE_SOURCES:
            raise ValueError(f"architecture source must be one of {ARCHITECTURE_SOURCES}, got {self.source!r}")
        if self.source == "held_out" and not 0 < self.held_out_users < 1:
            raise ValueError(f"held_out_users must be in (0, 1), got {self.held_out_users}")


class TrainerCallbacks:
    def build_model(self, config, n_items: int) -> nn.Module:
        from ..models import build_model

        return build_model(config.model, n_items)

    def objective(self, model: nn.Module) -> nn.Module | None:
        return None

    def auxiliary(self, model: nn.Module) -> nn.Module | None:
        return None

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        pass

    def before_batch(self, epoch: int, index: int) -> None:
        pass

    def loss_weight(self) -> float:
        return 1.0

    def architecture(self, model: nn.Module) -> ArchitectureStep | None:
        return None

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        return {}
