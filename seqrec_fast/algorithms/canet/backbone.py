"""CANet's backbone: one weight-sliced SASRec in which every route (embedding width e, hidden
width h, depth d) is a prefix of the weights, run two ways that compute the same function.

A block at hidden width h, every weight a prefix slice (W[:out, :in], b[:out]; a LayerNorm over
the first h features with its weight and bias [:h]):

    A = MHA(x)                 Q, K, V rows [0:h] in 4 heads of width h/4 (head k: features
                               [k h/4, (k+1) h/4)), scale 1/sqrt(h/4), causal, padded keys masked,
                               then W_o[:h, :h]
    S = LN_h(x + a_1 dropout(A))
    F = W_2[:h, :4h] GELU(W_1[:4h, :h] S + b_1) + b_2
    T = LN_h(S + a_2 dropout(F))     zero at padded positions

with a_1, a_2 learnable scalars starting at 0 (models.layers.Residual(scaled=True)). The input is
dropout(LN_e(item[:, :e] + position[:, :e])) projected by W_in[:h, :e] (+ b_in[:h]); after d
blocks, the last position's h features meet the classifier W_out[:, :h] (+ bias), untied from
the item embedding and shared by every exit.

    masked(inputs, e, h)        every row at the widest tensor widths, masked to its own prefixes
                                (LayerNorm statistics over them alone), attention once per hidden
                                choice with each row reading its own, the state after every depth
                                choice's block returned: static shapes, for export
    grouped(inputs, e, h)       the same states, each group of rows sharing (e, h) run sliced at
                                them to the deepest block: training
    sliced_scores(inputs, ...)  rows grouped by (e, h), each group run through ops.sliced_linear at
                                its own widths and stopped at each row's depth, whose block runs
                                the final position only: a small route multiplies less (inference)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...models.layers import Dropout, Residual, positions_from_first_item
from ...nas.slicing import sliced, sliced_norm
from ...ops import SlicedLinear
from ...ops.modules import attention, attention_mask
from .space import RouteSpace

FEED_FORWARD = 4  # the feed-forward is 4 times as wide as the block


@dataclass(frozen=True)
class RowWidths:
    """Each row's active prefixes at the widest tensor widths: masks (1.0 inside, 0.0 past) and
    widths, shaped to broadcast over [B, L, features]."""

    hidden: Tensor  # int64 [B], for choosing each row's attention
    embedding_mask: Tensor  # [B, 1, E]
    embedding_width: Tensor  # [B, 1, 1]
    hidden_mask: Tensor  # [B, 1, H]
    hidden_width: Tensor  # [B, 1, 1]
    inner_mask: Tensor  # [B, 1, 4 H]

    @classmethod
    def of(cls, embedding: Tensor, hidden: Tensor, max_embedding: int, max_hidden: int, dtype) -> RowWidths:
        def mask(widths: Tensor, size: int) -> Tensor:
            return (torch.arange(size, device=widths.device) < widths[:, None]).to(dtype)[:, None, :]

        return cls(hidden, mask(embedding, max_embedding), embedding.to(dtype)[:, None, None],
                   mask(hidden, max_hidden), hidden.to(dtype)[:, None, None],
                   mask(FEED_FORWARD * hidden, FEED_FORWARD * max_hidden))


def masked_layer_norm(norm: nn.LayerNorm, x: Tensor, mask: Tensor, width: Tensor) -> Tensor:
    """``norm`` over each row's first ``width`` features (``mask`` 1.0 there), with that prefix of
    its weight and bias; zero past them. Equals :func:`sliced_norm` on the prefix, and computes in
    float32 at least, as autocast runs a LayerNorm."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = (x * mask).sum(-1, keepdim=True) / width
    centered = (x - mean) * mask
    variance = centered.square().sum(-1, keepdim=True) / width
    return (centered * torch.rsqrt(variance + norm.eps) * norm.weight + norm.bias) * mask


def scaled_branch(residual: Residual, x: Tensor, branch: Tensor) -> Tensor:
    """``x + a dropout(branch)``: what a scaled Residual normalises."""
    return x + residual.scale * residual.dropout(branch)


def full_width(layer: SlicedLinear, x: Tensor) -> Tensor:
    return F.linear(x, layer.weight, layer.bias)


class CompoundBlock(nn.Module):
    """A post-LN Transformer block with scaled residuals, run at any prefix hidden width."""

    def __init__(self, hidden: int, heads: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.output = (SlicedLinear(hidden, hidden) for _ in range(4))
        self.attention_residual = Residual(hidden, dropout, scaled=True)
        self.expand = SlicedLinear(hidden, FEED_FORWARD * hidden)
        self.contract = SlicedLinear(FEED_FORWARD * hidden, hidden)
        self.feed_forward_residual = Residual(hidden, dropout, scaled=True)
        self.attn_dropout = Dropout(attn_dropout)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """Queries [B, Lq, h] over keys and values [B, L, h] in heads of width h / heads."""
        batch, queries, width = q.shape

        def heads(t: Tensor) -> Tensor:
            return t.reshape(batch, t.shape[1], self.heads, width // self.heads).transpose(1, 2)

        context = attention(heads(q), heads(k), heads(v), mask, self.attn_dropout)
        return context.transpose(1, 2).reshape(batch, queries, width)

    def sliced(self, x: Tensor, mask: Tensor, last: bool = False) -> Tensor:
        """x [B, L, h] at width h -> [B, L, h]; ``last``: the final position only, [B, 1, h]."""
        width = x.shape[-1]
        queries, mask = (x[:, -1:], mask[..., -1:, :]) if last else (x, mask)
        attended = self.attend(sliced(self.query, queries, width), sliced(self.key, x, width),
                               sliced(self.value, x, width), mask)
        s = sliced_norm(self.attention_residual.norm,
                        scaled_branch(self.attention_residual, queries, sliced(self.output, attended, width)))
        inner = F.gelu(sliced(self.expand, s, FEED_FORWARD * width))
        return sliced_norm(self.feed_forward_residual.norm,
                           scaled_branch(self.feed_forward_residual, s, sliced(self.contract, inner, width)))

    def masked(self, x: Tensor, mask: Tensor, widths: RowWidths, hidden_choices: tuple[int, ...]) -> Tensor:
        """x [B, L, H], zero past each row's hidden width -> the same, each row computed at its width."""
        full = x.shape[-1]
        q, k, v = (full_width(layer, x) for layer in (self.query, self.key, self.value))
        attended = torch.zeros_like(x)
        for width in hidden_choices:  # the head split depends on the width
            context = self.attend(q[..., :width], k[..., :width], v[..., :width], mask)
            attended = torch.where((widths.hidden == width)[:, None, None], F.pad(context, (0, full - width)), attended)
        branch = full_width(self.output, attended) * widths.hidden_mask
        s = masked_layer_norm(self.attention_residual.norm, scaled_branch(self.attention_residual, x, branch),
                              widths.hidden_mask, widths.hidden_width)
        inner = F.gelu(full_width(self.expand, s) * widths.inner_mask)
        branch = full_width(self.contract, inner) * widths.hidden_mask
        return masked_layer_norm(self.feed_forward_residual.norm, scaled_branch(self.feed_forward_residual, s, branch),
                                 widths.hidden_mask, widths.hidden_width)


class CompoundBackbone(nn.Module):
    """The weights of every route of ``space``: see the module's docstring."""

    def __init__(self, n_items: int, max_len: int, space: RouteSpace, heads: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.space = space
        self.max_embedding, self.max_hidden = max(space.embeddings), max(space.hiddens)
        for width in space.hiddens:
            if width % heads:
                raise ValueError(f"hidden_choices: {width} is not a multiple of the {heads} heads (num_heads)")
        self.items = nn.Embedding(n_items + 1, self.max_embedding, padding_idx=0)
        self.positions = nn.Embedding(max_len, self.max_embedding)
        self.embedding_norm = nn.LayerNorm(self.max_embedding)
        self.dropout = Dropout(dropout)
        self.projection = SlicedLinear(self.max_embedding, self.max_hidden)
        self.blocks = nn.ModuleList(CompoundBlock(self.max_hidden, heads, dropout, attn_dropout)
                                    for _ in range(max(space.depths)))
        self.classifier = SlicedLinear(self.max_hidden, n_items + 1)

    def embedded(self, inputs: Tensor, padding: Tensor, width: int) -> Tensor:
        """Item + position embeddings [B, L, width] (their first ``width`` features)."""
        if inputs.shape[1] > self.positions.num_embeddings:
            raise ValueError(f"sequence length {inputs.shape[1]} exceeds the model's max_len "
                             f"{self.positions.num_embeddings}")
        positions = positions_from_first_item(~padding)
        return (F.embedding(inputs, self.items.weight[:, :width])
                + F.embedding(positions, self.positions.weight[:, :width]))

    def projected(self, inputs: Tensor, padding: Tensor, embedding: int, hidden: int) -> Tensor:
        """The first block's input [B, L, hidden] of rows that share an ``embedding`` and ``hidden``
        width, run sliced at them (zero at padding)."""
        x = self.dropout(sliced_norm(self.embedding_norm, self.embedded(inputs, padding, embedding)))
        return sliced(self.projection, x, hidden).masked_fill(padding[..., None], 0.0)

    # -- static shapes ----------------------------------------------------------------------
    def masked(self, inputs: Tensor, embedding: Tensor, hidden: Tensor) -> list[Tensor]:
        """The states [B, L, H] after each depth choice's block, each row at its own ``embedding``
        and ``hidden`` width (int64 [B]), zero past its hidden width and at padding."""
        padding = inputs == 0
        mask = attention_mask(~padding, causal=True)
        x = self.embedded(inputs, padding, self.max_embedding)
        widths = RowWidths.of(embedding, hidden, self.max_embedding, self.max_hidden, x.dtype)
        x = self.dropout(masked_layer_norm(self.embedding_norm, x, widths.embedding_mask, widths.embedding_width))
        x = (full_width(self.projection, x) * widths.hidden_mask).masked_fill(padding[..., None], 0.0)
        exits = []
        for depth, block in enumerate(self.blocks, 1):
            x = block.masked(x, mask, widths, self.space.hiddens).masked_fill(padding[..., None], 0.0)
            if depth in self.space.depths:
                exits.append(x)
        return exits

    # -- grouped: training at each route's widths --------------------------------------------
    def grouped(self, inputs: Tensor, embedding: Tensor, hidden: Tensor) -> list[Tensor]:
        """What :meth:`masked` returns (every depth choice's states, zero past each row's hidden
        width), computed group by group: the rows sharing an embedding and hidden width run sliced
        at them, attention once at their own width, so a narrow row multiplies less than at the
        widest tensor widths. Every row still runs to the deepest block, as each of its depth
        exits reaches the loss through its route's weight."""
        padding = inputs == 0
        mask = attention_mask(~padding, causal=True)
        groups: dict[tuple[int, int], list[int]] = {}
        for row, widths in enumerate(torch.stack([embedding, hidden], dim=1).tolist()):  # one host read
            groups.setdefault(tuple(widths), []).append(row)
        order, exits = [], [[] for _ in self.space.depths]
        for (embedding_width, width), members in groups.items():
            rows = torch.tensor(members, device=inputs.device)
            group_padding, group_mask = padding[rows], mask[rows]
            x = self.projected(inputs[rows], group_padding, embedding_width, width)
            exit_index = 0
            for depth, block in enumerate(self.blocks, 1):
                x = block.sliced(x, group_mask).masked_fill(group_padding[..., None], 0.0)
                if depth in self.space.depths:
                    exits[exit_index].append(F.pad(x, (0, self.max_hidden - width)))
                    exit_index += 1
            order.extend(members)
        restore = torch.empty(len(order), dtype=torch.long)
        restore[torch.tensor(order)] = torch.arange(len(order))
        restore = restore.to(inputs.device)
        return [torch.cat(states)[restore] for states in exits]

    # -- sliced ------------------------------------------------------------------------------
    def sliced_scores(self, inputs: Tensor, routes: Tensor) -> Tensor:
        """Scores [B, n_items + 1] of every item after each row's route (int64 [B], indices of
        ``space``), each group of rows sharing a route's widths run at them."""
        padding = inputs == 0
        mask = attention_mask(~padding, causal=True)
        columns = self.classifier.weight.shape[0]
        scores = self.classifier.weight.new_zeros(len(inputs), columns)
        groups: dict[tuple[int, int], list[int]] = {}
        for row, route in enumerate(routes.tolist()):
            embedding, hidden, _ = self.space.choice_indices(route)
            groups.setdefault((embedding, hidden), []).append(row)
        for (embedding, hidden), members in groups.items():
            rows = torch.tensor(members, device=inputs.device)
            depths = torch.tensor([self.space.routes[route].depth for route in routes[rows].tolist()],
                                  device=inputs.device)
            width = self.space.hiddens[hidden]
            group_padding, group_mask = padding[rows], mask[rows]
            x = self.projected(inputs[rows], group_padding, self.space.embeddings[embedding], width)
            for depth, block in enumerate(self.blocks, 1):
                exiting = depths == depth
                if bool(exiting.any()):
                    last = block.sliced(x[exiting], group_mask[exiting], last=True)[:, -1]
                    scores[rows[exiting]] = sliced(self.classifier, last, columns)
                    staying = ~exiting
                    if not bool(staying.any()):
                        break
                    x, group_mask, group_padding = x[staying], group_mask[staying], group_padding[staying]
                    rows, depths = rows[staying], depths[staying]
                x = block.sliced(x, group_mask).masked_fill(group_padding[..., None], 0.0)
        return scores
