"""Architecture hyperparameters shared by every backbone (one dataclass, loadable from YAML)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """What a backbone is built from. Fields a backbone does not use are ignored by it."""

    # Fields at -1 (or an empty ``dilations``) take the backbone's own default, its class's
    # ``defaults`` (registry.resolve_defaults), so that ``--model M`` alone builds M as its
    # reference implementation does.
    name: str = "sasrec"
    hidden_size: int = 64
    num_layers: int = -1  # blocks (Transformers, STOSA), GRU layers, repeats of the dilation pattern
    num_heads: int = -1
    inner_size: int = -1  # feed-forward width (Transformers), GRU4Rec's recurrent width
    max_len: int = 50
    # Dropout on embeddings and residual branches, and on attention weights.
    dropout: float = -1.0
    attn_dropout: float = -1.0
    # "standard": LayerNorm(x + f(x)); "scaled": LayerNorm(x + a*f(x)) with a learnable scalar a
    # initialised at 0 (NASR, CANet), so every block starts as the identity.
    residual: str = "standard"
    tie_weights: bool = True  # score items with the input item embeddings
    # NextItNet: each residual block holds two causal convolutions with dilations d and 2d.
    kernel_size: int = 3
    dilations: tuple[int, ...] = ()
    # BERT4Rec: share of items replaced by the mask token in training, and share of the training
    # windows that mask only their last item instead (RecBole's ft_ratio): the task that ranking
    # the next item poses.
    mask_prob: float = 0.2
    mask_last_ratio: float = 0.5

    def unset_fields(self, names) -> list[str]:
        """Those of ``names`` left for the backbone to fill: at -1, or an empty ``dilations``."""
        return [name for name in names if getattr(self, name) in (-1, ())]
