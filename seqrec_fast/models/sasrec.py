"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Defaults: RecBole's SASRec (2 layers, 2 heads, dropout 0.5) trained on strided windows, whose
targets are the last ``stride`` positions, each with a context nearly as long as evaluation's;
chosen on validation over disjoint windows (docs/experiments.md)."""

from __future__ import annotations

from torch import Tensor, nn

from .base import SequentialRecommender
from .config import ModelConfig
from .layers import TransformerEncoder, init_weights


class SASRec(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {**SequentialRecommender.defaults, "dropout": 0.5, "attn_dropout": 0.5}  # RecBole's SASRec
    default_window = "stride"  # forward_last computes the last layer for the target positions only

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        self.encoder = TransformerEncoder(n_items + 1, config.max_len, config, causal=True)
        self.output_items = None if config.tie_weights else nn.Embedding(n_items + 1, config.hidden_size)
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.encoder(inputs)

    def forward_last(self, inputs: Tensor, last: int) -> Tensor:
        return self.encoder(inputs, min(last, inputs.shape[1]))

    def output_embedding(self):
        table = self.encoder.embedding.items if self.output_items is None else self.output_items
        return table.weight, None
