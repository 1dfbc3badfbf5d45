"""Architecture hyperparameters shared by every backbone (one dataclass, loadable from YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import POSITIVE, PROBABILITY, Check, option

MODEL_NAMES = ("bert4rec", "gru4rec", "nextitnet", "sasrec", "stosa")  # registry.MODELS, kept torch-free
# -1 (or an empty ``dilations``) takes the backbone's own default, its class's ``defaults``
# (registry.resolve_defaults), so that ``--model M`` alone builds M as its reference
# implementation does.
_OR_DEFAULT = Check(lambda v: v == -1 or v > 0, "-1 (the backbone's default) or a positive integer")
_DROPOUT = Check(lambda v: v == -1 or 0 <= v < 1, "-1 (the backbone's default) or a number in [0, 1)")


@dataclass
class ModelConfig:
    """What a backbone is built from. Fields a backbone does not use are ignored by it."""

    name: str = option("sasrec", choices=MODEL_NAMES, help="backbone")
    hidden_size: int = option(64, check=POSITIVE, help="embedding and hidden width")
    num_layers: int = option(-1, check=_OR_DEFAULT,
                             help="blocks (Transformers, STOSA), GRU layers or repeats of NextItNet's dilations; "
                                  "-1 takes the backbone's default")
    num_heads: int = option(-1, check=_OR_DEFAULT, help="attention heads; -1 takes the backbone's default")
    inner_size: int = option(-1, check=_OR_DEFAULT,
                             help="feed-forward width (Transformers) or GRU4Rec's recurrent width; -1 takes the "
                                  "backbone's default")
    max_len: int = option(50, check=POSITIVE, help="items of history a model reads")
    dropout: float = option(-1.0, check=_DROPOUT,
                            help="dropout on embeddings and residual branches; -1 takes the backbone's default")
    attn_dropout: float = option(-1.0, check=_DROPOUT,
                                 help="dropout on attention weights; -1 takes the backbone's default")
    # "scaled" starts every block as the identity (NASR, CANet).
    residual: str = option("standard", choices=("standard", "scaled"),
                           help="standard: LayerNorm(x + f(x)); scaled: LayerNorm(x + a f(x)) with a learnable a "
                                "initialised at 0")
    tie_weights: bool = option(True, help="score items with the input item embeddings")
    kernel_size: int = option(3, check=POSITIVE, help="NextItNet's convolution width")
    dilations: tuple[int, ...] = option(
        (), check=Check(lambda v: all(d > 0 for d in v), "positive integers"),
        help="NextItNet's dilation pattern; each residual block holds two causal convolutions with dilations d "
             "and 2d; empty takes the backbone's default")
    # The masked-last windows pose the task that ranking the next item poses (RecBole's ft_ratio).
    mask_prob: float = option(0.2, check=Check(lambda v: 0 < v < 1, "a number in (0, 1)"),
                              help="BERT4Rec: share of items replaced by the mask token in training")
    mask_last_ratio: float = option(0.5, check=PROBABILITY,
                                    help="BERT4Rec: share of training windows that mask only their last item")
    mask_span: str = option("targets", choices=("targets", "window"),
                            help="BERT4Rec: where the other windows' masks fall: their target positions (each training "
                                 "item masked in one window an epoch at most) or any position, context included "
                                 "(RecBole masks any item of a prefix)")

    def unset_fields(self, names) -> list[str]:
        """Those of ``names`` left for the backbone to fill: at -1, or an empty ``dilations``."""
        return [name for name in names if getattr(self, name) in (-1, ())]
