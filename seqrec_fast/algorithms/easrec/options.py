"""EASRec's search options, declared with the options engine (seqrec_fast.options) so that the
command line and a run directory's YAML read them alike; torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...options import NON_NEGATIVE, NON_NEGATIVE_NUMBER, POSITIVE, POSITIVE_NUMBER, Check, option, to_dict
from ...train.callbacks import ARCHITECTURE_SOURCES
from .space import GATES, candidate_index, parse_architecture

TEMPERATURES = ("scaled", "paper")
RETRAIN_MODES = ("inherit", "scratch")
# The paper's temperature falls by 5e-5 per step from 1 to its floor 0.01: 19,800 steps.
PAPER_TEMPERATURE_STEPS = 19_800

_OPEN_UNIT = Check(lambda v: 0 < v < 1, "a number in (0, 1)")
_KEEP = Check(lambda v: all(0 < k <= 1 for k in v), "numbers in (0, 1]")


@dataclass(frozen=True)
class EASRecConfig:
    """Search options (the paper's defaults where it gives them)."""

    keep: tuple[float, ...] = option((1.0, 0.5, 0.25), check=_KEEP,
                                     help="candidate widths: fractions of the hidden and inner sizes every layer keeps")
    layers: int = option(4, check=POSITIVE, help="L, the supernet's layers: the depth is searched in 1..L")
    gates: str = option("two", choices=GATES,
                        help="data-aware gates from the embedding, scaling the feed-forward's input and inner "
                             "activation: two (Linear -> ReLU -> Linear -> 2 sigmoid, the paper's), one (Linear -> "
                             "2 sigmoid) or none")
    search_epochs: int = option(10, check=POSITIVE,
                                help="epoch budget of the supernet search (the trainer's early stopping applies)")
    flops_lambda: float = option(0.1, check=NON_NEGATIVE_NUMBER,
                                 help="lambda, the weight of the FLOPs penalty (Eq. 16): lambda (L_t / L) times the "
                                      "expected multiply-adds relative to the full model's (Eq. 15)")
    flops_budget: int = option(0, check=NON_NEGATIVE,
                               help="a budget in multiply-adds per scored sequence instead of Eq. 15: the penalty "
                                    "becomes lambda max(0, E[MACs] / budget - 1) and the derived architecture the "
                                    "most probable one within the budget; 0 turns it off")
    temperature: str = option("scaled", choices=TEMPERATURES,
                              help="Gumbel-softmax temperature at weight step t: scaled: max(0.01, 1 - 0.99 t / T) "
                                   "over the search's T weight steps; paper: max(0.01, 1 - 5e-5 t)")
    architecture_every: int = option(10, check=POSITIVE, help="training steps between architecture steps (f)")
    architecture_source: str = option("held_out", choices=ARCHITECTURE_SOURCES,
                                      help="batches the architecture is stepped on: a held-out share of the training "
                                           "users, or the validation split")
    held_out_users: float = option(0.1, check=_OPEN_UNIT,
                                   help="share of the training users held out for the architecture steps")
    architecture_lr: float = option(1e-3, check=POSITIVE_NUMBER,
                                    help="AdamW learning rate of the architecture parameters alpha and beta")
    architecture_weight_decay: float = option(1e-6, check=NON_NEGATIVE_NUMBER,
                                              help="decoupled weight decay of the architecture parameters")
    retrain: str = option("inherit", choices=RETRAIN_MODES,
                          help="inherit: retrain the derived model from its slice of the supernet's selected weights "
                               "(the paper); scratch: from a fresh initialisation (a fixed --architecture always "
                               "starts from scratch)")
    architecture: str = option("", help="a fixed architecture instead of a search, KEEPxDEPTH: 0.5x2 keeps 50% of "
                                        "the hidden and inner sizes and 2 layers (KEEP one of --keep, DEPTH at most "
                                        "--layers)")

    def __post_init__(self) -> None:
        if len(set(self.keep)) != len(self.keep):
            raise ValueError(f"keep: each fraction once, got {', '.join(f'{k:g}' for k in self.keep)}")
        if self.architecture:
            self.fixed_architecture()

    @property
    def searched(self) -> bool:
        return not self.architecture

    def fixed_architecture(self) -> tuple[int, int]:
        """(width index, depth) of the fixed --architecture."""
        return candidate_index(parse_architecture(self.architecture), self.keep, self.layers)

    def temperature_steps(self, search_steps: int) -> int:
        """Weight steps over which the temperature falls from 1 to 0.01."""
        return search_steps if self.temperature == "scaled" else PAPER_TEMPERATURE_STEPS

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
