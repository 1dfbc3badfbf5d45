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
    dropout: float = 0.2  # embeddings, residual branches and feed-forward
    attn_dropout: float = 0.2
    # "standard": LayerNorm(x + f(x)); "scaled": LayerNorm(x + a*f(x)) with a learnable scalar a
    # initialised at 0 (NASR, CANet), so every block starts as the identity.
    residual: str = "standard"
    tie_weights: bool = True  # score items with the input item embeddings
    # NextItNet: each residual block holds two causal convolutions with dilations d and 2d.
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    # BERT4Rec: share of items replaced by the mask token in training.
    mask_prob: float = 0.2
