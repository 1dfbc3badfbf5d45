"""AdaRec's teacher: trained by the engine in the paper's size, or an existing run; frozen, in eval
mode, and read through forward hooks for what the student is distilled from.

    NextItNet   d 256, 16 residual blocks (dilations 8 x {1, 2, 4, 8}); its layers for the hidden
                distillation are every second block's output
    SASRec      d 128, 8 blocks, 4 heads; every block's output"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...models import ModelConfig, SequentialRecommender
from ...train.config import TrainConfig
from .options import TEACHERS

TEACHER_DIR = "teacher"
# The paper's teachers; NextItNet's pattern (1, 4) gives each block convolutions of dilations d
# and 2d, so 8 repeats make the 16 blocks of dilations 8 x {1, 2, 4, 8}.
TEACHER_SIZES = {
    "nextitnet": dict(hidden_size=256, num_layers=8, dilations=(1, 4)),
    "sasrec": dict(hidden_size=128, num_layers=8, num_heads=4, inner_size=512),
}


def teacher_train_config(train: TrainConfig, name: str, out: Path, epochs: int = 0) -> TrainConfig:
    """The search's training settings with the teacher's model, on the teacher's own windows, for
    ``epochs`` (0: the search's epoch budget)."""
    config = copy.deepcopy(train)
    config.epochs = epochs or train.epochs
    config.model = ModelConfig(name=name, max_len=train.model.max_len, **TEACHER_SIZES[name])
    config.window = ""
    config.loss = ""
    config.out = str(out)
    return config


def check_teacher_model(model: ModelConfig, where: str) -> None:
    if model.name not in TEACHERS:
        raise ValueError(f"{where}: the teacher is a {model.name} run; AdaRec distils {' or '.join(TEACHERS)}")


@dataclass
class TeacherOutputs:
    embedded: Tensor  # [B, L, d_T]
    layers: list[Tensor]  # the hidden layers distilled from, each [B, L, d_T]
    hidden: Tensor  # the final representation [B, L, d_T]


class Teacher:
    """A frozen teacher. Not a module of the student's training step on purpose: its weights are
    neither trained nor checkpointed with the student, and ``train()`` never reaches it."""

    def __init__(self, model: SequentialRecommender):
        check_teacher_model(model.config, "teacher")
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self._captured: dict[str, Tensor | list[Tensor]] = {}
        if model.config.name == "nextitnet":
            embedding, layers = model.items, list(model.blocks)[1::2]
        else:
            embedding, layers = model.encoder.embedding, list(model.encoder.blocks)
        self.n_layers = len(layers)
        self.width = model.config.hidden_size
        embedding.register_forward_hook(lambda module, args, output: self._captured.__setitem__("embedded", output))
        for layer in layers:
            layer.register_forward_hook(lambda module, args, output: self._captured["layers"].append(output))

    def to(self, device: torch.device) -> Teacher:
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, inputs: Tensor) -> TeacherOutputs:
        self._captured = {"layers": []}
        hidden = self.model(inputs)
        captured, self._captured = self._captured, {}
        return TeacherOutputs(captured["embedded"], captured["layers"], hidden)

    def score_all(self, hidden: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model.score_all(hidden)
