"""How an algorithm reaches into training: the one protocol the trainer calls, so that the
trainer knows nothing of any algorithm.

A :class:`TrainerCallbacks` subclass overrides what it needs; the base class trains the
configured backbone alone. The trainer calls, in this order:

    build_model(config, n_items)   once, after seeding: the model to train (a supernet, or the
                                   model of a search's ModelSpec) instead of the backbone
    auxiliary(model)               once: a module whose output, ``auxiliary(inputs)`` after each
                                   forward of ``model``, is added to the loss; it reads what the
                                   forward computed (the model's own loss terms, or ADT's
                                   objectives) and is trained, checkpointed and resumed with the
                                   model
    before_batch(epoch, index)     before every training batch (a warm-up's random candidate)

The searches about to land need three more hooks, which join this class with their first user
and keep its shape (one method each, a no-op by default):

    architecture_step()            an extra optimizer over architecture parameters, stepped every
                                   f training steps on a batch from a held-out source (AdaRec,
                                   EASRec), never on the batch the weights were trained on
    trainable(stage)               the parameter groups trained in a stage, the rest frozen
                                   (NASR's staged supernet training)
    the model's forward losses     terms a model computes in its forward (CANet's router balance)
                                   arrive through ``auxiliary``, reading them off the model
"""

from __future__ import annotations

from torch import nn


class TrainerCallbacks:
    def build_model(self, config, n_items: int) -> nn.Module:
        from ..models import build_model

        return build_model(config.model, n_items)

    def auxiliary(self, model: nn.Module) -> nn.Module | None:
        return None

    def before_batch(self, epoch: int, index: int) -> None:
        pass
