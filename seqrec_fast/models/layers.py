"""Building blocks shared by the backbones: masked multi-head attention, the feed-forward layer,
the (optionally scaled) residual connection, Transformer blocks and the item+position input.

Sequences are left-padded with item 0. Every block keeps two promises that the tests check:
a causal block never lets position i see positions > i, and padding never changes the output at
a real position (padded keys are masked; positions are counted from the first real item)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import Dropout, SlicedLinear  # Dropout: the native one-pass dropout, re-exported for the backbones
from ..ops.modules import attention, attention_mask


def check_heads(hidden_size: int, num_heads: int) -> None:
    if num_heads < 1 or hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")


class MultiHeadAttention(nn.Module):
    """Self-attention over [B, L, d] with a boolean mask from :func:`attention_mask`."""

    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float):
        super().__init__()
        check_heads(hidden_size, num_heads)
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = Dropout(attn_dropout)

    def forward(self, x: Tensor, mask: Tensor, last: int | None = None) -> Tensor:
        """``last``: only the last ``last`` positions query (output [B, last, d]); every position
        is still a key and a value."""
        batch, length, hidden = x.shape
        if last is None:
            q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -last:], weight[:hidden], bias[:hidden])
            q = q.view(batch, last, self.num_heads, -1).transpose(1, 2)
            k, v = F.linear(x, weight[hidden:], bias[hidden:]).view(batch, length, 2, self.num_heads, -1).permute(
                2, 0, 3, 1, 4)
            mask, length = mask[..., -last:, :], last
        context = attention(q, k, v, mask, self.attn_dropout)
        return self.out(context.transpose(1, 2).reshape(batch, length, hidden))


class FeedForward(nn.Module):
    """Linear -> activation (GELU by default) -> Linear; the dropout sits in the surrounding
    :class:`Residual`."""

    def __init__(self, hidden_size: int, inner_size: int, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, inner_size), activation(), nn.Linear(inner_size, hidden_size)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Residual(nn.Module):
    """``LayerNorm(x + scale * dropout(branch))``.

    ``scaled=True`` makes ``scale`` a learnable scalar initialised at 0 (the linear residual of
    NASR and CANet), so a freshly added block is the identity map; otherwise ``scale`` is 1."""

    def __init__(self, hidden_size: int, dropout: float, scaled: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = Dropout(dropout)
        self.scale = nn.Parameter(torch.zeros(())) if scaled else None

    def forward(self, x: Tensor, branch: Tensor) -> Tensor:
        branch = self.dropout(branch)
        if self.scale is not None:
            branch = self.scale * branch
        return self.norm(x + branch)


def residual_is_scaled(kind: str) -> bool:
    if kind not in ("standard", "scaled"):
        raise ValueError(f"residual must be 'standard' or 'scaled', got {kind!r}")
    return kind == "scaled"


class TransformerBlock(nn.Module):
    """Post-norm Transformer encoder block (as in SASRec/BERT4Rec reference implementations)."""

    def __init__(self, hidden_size: int, num_heads: int, inner_size: int, dropout: float,
                 attn_dropout: float, residual: str = "standard"):
        super().__init__()
        scaled = residual_is_scaled(residual)
        self.attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout)
        self.attention_residual = Residual(hidden_size, dropout, scaled)
        self.feed_forward = FeedForward(hidden_size, inner_size)
        self.feed_forward_residual = Residual(hidden_size, dropout, scaled)

    def forward(self, x: Tensor, mask: Tensor, last: int | None = None) -> Tensor:
        """``last``: compute the block's output at the last ``last`` positions only ([B, last, d]),
        which is all a final block owes a loss whose targets sit there."""
        attended = self.attention(x, mask, last)
        x = self.attention_residual(x if last is None else x[:, -last:], attended)
        return self.feed_forward_residual(x, self.feed_forward(x))


def positions_from_first_item(valid: Tensor) -> Tensor:
    """Position of each item counted from the user's first item (0 at padding), so that adding
    left padding never shifts a real item's position."""
    return (valid.long().cumsum(dim=1) - 1).clamp_min(0)


class ItemPositionEmbedding(nn.Module):
    """Item embedding + learned position embedding, then LayerNorm and dropout."""

    def __init__(self, n_tokens: int, max_len: int, hidden_size: int, dropout: float):
        super().__init__()
        self.items = nn.Embedding(n_tokens, hidden_size, padding_idx=0)
        self.positions = nn.Embedding(max_len, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = Dropout(dropout)

    def forward(self, inputs: Tensor, valid: Tensor) -> Tensor:
        if inputs.shape[1] > self.positions.num_embeddings:
            raise ValueError(
                f"sequence length {inputs.shape[1]} exceeds the model's max_len {self.positions.num_embeddings}"
            )
        x = self.items(inputs) + self.positions(positions_from_first_item(valid))
        return self.dropout(self.norm(x))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-free normal(0, std) init for linear (weight-sliced ones too) and embedding
    weights, as in the reference SASRec/BERT4Rec code; LayerNorm at identity. Apply with
    ``model.apply(init_weights)``."""
    if isinstance(module, (nn.Linear, SlicedLinear, nn.Embedding, nn.Conv1d)):
        nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    if isinstance(module, (nn.Linear, SlicedLinear, nn.Conv1d)) and module.bias is not None:
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class TransformerEncoder(nn.Module):
    """Item + position embedding followed by Transformer blocks, causal or bidirectional, with
    padded keys masked: the encoder of SASRec (causal) and BERT4Rec (bidirectional)."""

    def __init__(self, n_tokens: int, n_positions: int, config, causal: bool):
        super().__init__()
        self.causal = causal
        self.embedding = ItemPositionEmbedding(n_tokens, n_positions, config.hidden_size, config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden_size, config.num_heads, config.inner_size, config.dropout,
                             config.attn_dropout, config.residual)
            for _ in range(config.num_layers)
        )

    def forward(self, inputs: Tensor, last: int | None = None) -> Tensor:
        """[B, L, d], or with ``last`` the last ``last`` positions only, [B, last, d]: the final
        block then forms queries, feed-forward and norms for those positions alone (a supernet's
        replacement blocks compute every position and are sliced)."""
        valid = inputs > 0
        mask = attention_mask(valid, causal=self.causal)
        x = self.embedding(inputs, valid)
        for index, block in enumerate(self.blocks):
            if last is not None and index == len(self.blocks) - 1 and isinstance(block, TransformerBlock):
                return block(x, mask, last)
            x = block(x, mask)
        return x if last is None else x[:, -last:]
