"""NASR's search options, declared with the options engine (seqrec_fast.options) so that the
command line and a run directory's YAML read them alike; torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...options import NON_NEGATIVE_NUMBER, POSITIVE, POSITIVE_NUMBER, Check, option, to_dict
from .space import OPS, block_sizes, parse_layers

PROJECTORS = ("light", "flatten")
AUGMENTATIONS = ("mask", "crop", "reorder")

_OPEN_UNIT = Check(lambda v: 0 < v < 1, "a number in (0, 1)")


@dataclass(frozen=True)
class NASRConfig:
    """Search options (the paper's defaults where it gives them)."""

    layers: int = option(16, check=POSITIVE, help="layers of the hybrid, each one of the ops")
    blocks: int = option(4, check=POSITIVE, help="blocks the layers are cut into, searched one after another")
    paths: int = option(4, check=POSITIVE, help="paths of a block sampled uniformly per supernet step")
    block_epochs: int = option(2, check=POSITIVE, help="epochs of each block's supernet training")
    supernet_batch: int = option(64, check=POSITIVE, help="sequences per supernet step")
    supernet_lr: float = option(1e-3, check=POSITIVE_NUMBER,
                                help="AdamW learning rate of each block's supernet training")
    supernet_weight_decay: float = option(0.01, check=NON_NEGATIVE_NUMBER,
                                          help="AdamW weight decay of each block's supernet training")
    train_earlier: bool = option(False, help="keep training the embedding and the earlier blocks' chosen paths while "
                                             "a block trains (by default they are frozen)")
    projector: str = option("light", choices=PROJECTORS,
                            help="light: mean over the real positions -> d -> d; flatten: the authors' [L*d] -> L*d "
                                 "-> d (about 10M parameters at L 50, d 64)")
    augmentations: str = option("mask,crop,reorder", help=f"views' augmentations, comma-separated "
                                                           f"({', '.join(AUGMENTATIONS)}), one drawn per view")
    augment_fraction: float = option(0.25, check=_OPEN_UNIT, help="share of a sequence each augmentation destroys")
    held_out_users: float = option(0.15, check=_OPEN_UNIT,
                                   help="share of the training users held out for selection, never in a supernet "
                                        "batch")
    architecture: str = option("", help="a fixed hybrid instead of a search: one op per layer, comma-separated, "
                                        f"OP*N for runs (ops: {', '.join(OPS)})")

    def __post_init__(self) -> None:
        block_sizes(self.layers, self.blocks)
        names = self.augmentation_names
        unknown = [name for name in names if name not in AUGMENTATIONS]
        if not names or unknown:
            raise ValueError(f"augmentations: expected a comma-separated subset of {', '.join(AUGMENTATIONS)}, "
                             f"got {self.augmentations!r}")
        if self.architecture:
            parse_layers(self.architecture, self.layers)

    @property
    def searched(self) -> bool:
        return not self.architecture

    @property
    def layers_per_block(self) -> int:
        return block_sizes(self.layers, self.blocks)

    @property
    def augmentation_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.augmentations.split(",") if name.strip())

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
