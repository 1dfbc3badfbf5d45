"""Architecture hyperparameters shared by every backbone (one dataclass, loadable from YAML)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """What a backbone is built from. Fields a backbone does not use are ignored by it."""

    name: str = "sasrec"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    inner_size: int = 256  # feed-forward width (Transformers), also GRU4Rec's recurrent width
    max_len: int = 50
    # Dropout on embeddings and residual branches, and on attention weights; -1 takes the
    # backbone's own default (that of its reference implementation, see ``default_dropout``).
    dropout: float = -1.0
    attn_dropout: float = -1.0
    # "standard": LayerNorm(x + f(x)); "scaled": LayerNorm(x + a*f(x)) with a learnable scalar a
    # initialised at 0 (NASR, CANet), so every block starts as the identity.
    residual: str = "standard"
    tie_weights: bool = True  # score items with the input item embeddings
    # NextItNet: each residual block holds two causal convolutions with dilations d and 2d.
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    # BERT4Rec: share of items replaced by the mask token in training.
    mask_prob: float = 0.2
