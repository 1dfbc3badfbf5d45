"""GRU4Rec (Hidasi et al., ICLR 2016; Tan et al. 2016 for the session-parallel training setup):
a GRU over the item embeddings."""

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
    default_dropout = (0.3, 0.0)  # RecBole's GRU4Rec

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        self.items = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        self.dropout = Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden_size, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                          dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.output_items = None if config.tie_weights else nn.Embedding(n_items + 1, config.hidden_size)
        self.apply(init_weights)
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.zeros_(weight)

    def forward(self, inputs: Tensor) -> Tensor:
        # The GRU must start its state at the first real item, not after a run of padding steps
        # (which would move the state through the biases): run it on right-padded rows.
        valid = inputs > 0
        n_pad = inputs.shape[1] - valid.sum(dim=1, keepdim=True)
        out, _ = self.gru(self.dropout(self.items(roll_rows(inputs, n_pad))))
        return roll_rows(out, -n_pad) * valid.unsqueeze(-1).to(out.dtype)

    def output_embedding(self):
        table = self.items if self.output_items is None else self.output_items
        return table.weight, None
