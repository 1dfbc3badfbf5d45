"""BERT4Rec (Sun et al., CIKM 2019): bidirectional self-attention trained with the cloze task.

The mask token is item id ``n_items + 1``. To rank the next item, the mask token is appended after
the sequence and the oldest column is dropped when that exceeds ``max_len``: the mask then sits at
a position training has seen (training windows never exceed ``max_len``; an untrained position
``max_len`` cost full-length users most of their accuracy).

Defaults: RecBole's BERT4Rec (2 layers, 2 heads, dropout 0.2, mask_prob 0.2, and half of the
windows masking only their last item: its ft_ratio 0.5, which RecBole draws per batch), trained
on strided windows: each window's masks fall in its last ``stride`` positions with up to
``max_len`` items of context, as at evaluation. Chosen on validation: strided windows score well
above disjoint ones and within a seed's spread of one window per prefix at a fifth of its cost,
and masks on the target positions only score no lower than masks anywhere in the window
(``mask_span="window"``, RecBole's rule), with a smoother validation curve (docs/experiments.md)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import SequentialRecommender
from .config import ModelConfig
from .layers import TransformerEncoder, init_weights


class BERT4Rec(SequentialRecommender):
    objective = "cloze"
    causal = False
    default_window = "stride"
    defaults = {**SequentialRecommender.defaults, "dropout": 0.2, "attn_dropout": 0.2}  # RecBole's BERT4Rec

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        self.mask_token = n_items + 1
        self.encoder = TransformerEncoder(n_items + 2, config.max_len, config, causal=False)
        # Prediction head of the reference implementation: dense -> GELU -> LayerNorm, then the
        # (tied) item embeddings plus a per-item output bias.
        self.head = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(),
                                  nn.LayerNorm(config.hidden_size))
        self.output_items = None if config.tie_weights else nn.Embedding(n_items + 1, config.hidden_size)
        self.output_bias = nn.Parameter(torch.zeros(n_items + 1))
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.head(self.encoder(inputs))

    def forward_last(self, inputs: Tensor, last: int) -> Tensor:
        return self.head(self.encoder(inputs, min(last, inputs.shape[1])))

    def output_embedding(self):
        weight = self.encoder.embedding.items.weight[: self.n_items + 1] if self.output_items is None else self.output_items.weight
        return weight, self.output_bias

    def next_item_hidden(self, inputs: Tensor) -> Tensor:
        mask_column = torch.full_like(inputs[:, :1], self.mask_token)
        return self.forward_last(torch.cat([inputs, mask_column], dim=1)[:, -self.config.max_len:], 1)[:, -1]
