"""CANet's router: a one-block SASRec over its own narrow item embedding, read at the last
position into one logit per route (the paper's Sec. III-A-1: width 32, 4 heads, feed-forward
128). It sees what the backbone sees, the window's items, never a target."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ...models.layers import ItemPositionEmbedding, TransformerBlock, attention_mask


@dataclass(frozen=True)
class RouterShape:
    width: int
    heads: int
    inner: int


class Router(nn.Module):
    def __init__(self, shape: RouterShape, n_items: int, max_len: int, routes: int, dropout: float,
                 attn_dropout: float):
        super().__init__()
        self.shape = shape
        self.embedding = ItemPositionEmbedding(n_items + 1, max_len, shape.width, dropout)
        self.block = TransformerBlock(shape.width, shape.heads, shape.inner, dropout, attn_dropout)
        self.logits = nn.Linear(shape.width, routes)

    def forward(self, inputs: Tensor) -> Tensor:
        """Route logits [B, routes] of int64 [B, L] windows, left-padded with 0: the block
        computes the last position alone, causal and blind to padding."""
        valid = inputs > 0
        x = self.block(self.embedding(inputs, valid), attention_mask(valid, causal=True), last=1)
        return self.logits(x[:, -1])
