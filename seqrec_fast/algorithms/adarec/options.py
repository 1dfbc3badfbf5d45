"""AdaRec's search options, declared with the options engine (seqrec_fast.options) so that the
command line and a run directory's YAML read them alike; torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...options import NON_NEGATIVE, NON_NEGATIVE_NUMBER, POSITIVE, POSITIVE_NUMBER, Check, option, to_dict
from ...train.callbacks import ARCHITECTURE_SOURCES
from .space import EDGES, OPS

TEACHERS = ("nextitnet", "sasrec")  # or the directory of a trained run of one of them
RETRAIN_MODES = ("kd", "finetune")
# The paper's architecture learning rate, 2e-5, is tuned for about this many steps: Adam moves a
# parameter by about lr per step, so lr x steps is what a scaled rate keeps.
PAPER_ARCHITECTURE_LR = 2e-5
PAPER_ARCHITECTURE_STEPS = 45_000
# The authors decay the temperature every 5 of 200 epochs: 40 decays over a search.
PAPER_TEMPERATURE_DECAYS = 40

_UNIT = Check(lambda v: 0 <= v <= 1, "a number in [0, 1]")
_OPEN_UNIT = Check(lambda v: 0 < v < 1, "a number in (0, 1)")


@dataclass(frozen=True)
class AdaRecConfig:
    """Search options (the paper's defaults where it gives them)."""

    teacher: str = option("nextitnet", help="nextitnet or sasrec (trained first, in the paper's size, into "
                                            "RUN_DIR/teacher), or the directory of a trained run of one of them")
    teacher_epochs: int = option(0, check=NON_NEGATIVE,
                                 help="epoch budget of the teacher's training (early stopping still applies); 0 takes "
                                      "--epochs")
    width_ratio: int = option(4, check=POSITIVE, help="the student's width is the teacher's divided by this")
    cells: int = option(4, check=POSITIVE, help="cells of the student, each with its own weights")
    search_epochs: int = option(10, check=POSITIVE, help="epochs of the supernet search")
    gamma: float = option(0.5, check=_UNIT, help="weight of the distillation loss against cross-entropy (Eq. 16)")
    beta: float = option(8.0, check=Check(lambda v: 0 <= v <= 1000, "a number in [0, 1000]"),
                         help="weight of the cost loss (Eq. 16)")
    kd_temperature: float = option(1.0, check=POSITIVE_NUMBER,
                                   help="softmax temperature of the prediction-layer distillation")
    emb_loss: bool = option(True, help="distil the embedding layer (L_emb)")
    hidden_loss: bool = option(True, help="distil the hidden layers through EMD (L_hidden)")
    pred_loss: bool = option(True, help="distil the next-item distribution (L_pred)")
    ce_loss: bool = option(True, help="train on the next item's cross-entropy too (L_CE)")
    architecture_source: str = option("held_out", choices=ARCHITECTURE_SOURCES,
                                      help="batches the architecture is stepped on: a held-out share of the training "
                                           "users, or the validation split")
    held_out_users: float = option(0.1, check=_OPEN_UNIT,
                                   help="share of the training users held out for the architecture steps")
    architecture_every: int = option(1, check=POSITIVE, help="training steps between architecture steps (f)")
    architecture_lr: float = option(0.0, check=NON_NEGATIVE_NUMBER,
                                    help="architecture learning rate; 0 scales the paper's 2e-5 (for 45k steps) to "
                                         "this search's architecture steps")
    architecture_weight_decay: float = option(1e-4, check=NON_NEGATIVE_NUMBER,
                                              help="decoupled weight decay of the architecture parameters")
    temperature: float = option(1.0, check=POSITIVE_NUMBER,
                                help="initial Gumbel-softmax temperature")
    temperature_decay: float = option(0.8, check=_OPEN_UNIT, help="factor the temperature is multiplied by")
    temperature_every: int = option(0, check=NON_NEGATIVE,
                                    help="epochs between temperature decays; 0 spreads the paper's 40 decays over "
                                         "the search (at least one epoch apart)")
    architecture: str = option("", help="a fixed cell instead of a search: one op per edge, comma-separated "
                                        f"({EDGES} edges; ops: {', '.join(OPS)})")
    retrain: str = option("kd", choices=RETRAIN_MODES,
                          help="kd: retrain the derived student from scratch with the teacher (the paper); finetune: "
                               "continue from the supernet's weights with cross-entropy (the authors' code)")

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError(f"teacher must be one of {', '.join(TEACHERS)} or a trained run directory")
        if self.architecture:
            parse_architecture(self.architecture)
        if not (self.ce_loss or self.emb_loss or self.hidden_loss or self.pred_loss):
            raise ValueError("every loss term is switched off: keep ce_loss or a distillation term")

    @property
    def searched(self) -> bool:
        return not self.architecture

    def temperature_at(self, epoch: int) -> float:
        return self.temperature * self.temperature_decay ** (epoch // self.decay_every())

    def decay_every(self) -> int:
        return self.temperature_every or max(1, round(self.search_epochs / PAPER_TEMPERATURE_DECAYS))

    def architecture_lr_for(self, architecture_steps: int) -> float:
        if self.architecture_lr:
            return self.architecture_lr
        return PAPER_ARCHITECTURE_LR * PAPER_ARCHITECTURE_STEPS / max(1, architecture_steps)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def parse_architecture(text: str) -> tuple[str, ...]:
    """A cell as one op name per edge ("conv3_d1,skip,...")."""
    names = tuple(name.strip() for name in text.split(","))
    if len(names) != EDGES:
        raise ValueError(f"architecture: expected {EDGES} comma-separated ops (one per edge), got {len(names)}")
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise ValueError(f"architecture: unknown op(s) {', '.join(unknown)}; valid: {', '.join(OPS)}")
    return names
