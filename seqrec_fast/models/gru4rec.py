"""GRU4Rec (Hidasi et al., ICLR 2016; Tan et al. 2016 for the session-parallel training setup):
a GRU over the item embeddings, then a dense layer back to the embedding width.

As RecBole's GRU4Rec: one layer of ``inner_size`` (128) recurrent units without biases over
embeddings of ``hidden_size``, dropout 0.3 on the embeddings."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import SequentialRecommender
from .config import ModelConfig
from .layers import Dropout, init_weights


def roll_rows(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate each row of x [B, L, ...] left by its own shift [B, 1]: out[b, i] = x[b, (i + shift[b]) % L]."""
    length = x.shape[1]
    index = (torch.arange(length, device=x.device) + shift) % length
    if x.dim() > 2:
        index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class GRU4Rec(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {**SequentialRecommender.defaults, "num_layers": 1, "inner_size": 128, "dropout": 0.3,
                "attn_dropout": 0.0}

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        self.items = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        self.dropout = Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden_size, config.inner_size, num_layers=config.num_layers, bias=False,
                          batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dense = nn.Linear(config.inner_size, config.hidden_size)
        self.output_items = None if config.tie_weights else nn.Embedding(n_items + 1, config.hidden_size)
        self.apply(init_weights)
        for weight in self.gru.parameters():
            nn.init.xavier_uniform_(weight)

    def forward(self, inputs: Tensor) -> Tensor:
        # The GRU must start its state at the first real item, not after a run of padding steps
        # (which would move the state through the biases): run it on right-padded rows.
        valid = inputs > 0
        n_pad = inputs.shape[1] - valid.sum(dim=1, keepdim=True)
        out, _ = self.gru(self.dropout(self.items(roll_rows(inputs, n_pad))))
        out = self.dense(out)
        return roll_rows(out, -n_pad) * valid.unsqueeze(-1).to(out.dtype)

    def output_embedding(self):
        table = self.items if self.output_items is None else self.output_items
        return table.weight, None
