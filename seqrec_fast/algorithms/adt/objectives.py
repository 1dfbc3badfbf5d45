"""ADT's two auxiliary objectives (KDD'23, Eqs. 6-12): head independence and reconstruction.

They are read off an unchanged backbone through forward hooks: at construction the module hooks
each layer (its input, the last layer's output) and each layer's attention output projection (its
input is the per-head context, heads concatenated). ``forward`` then turns what the model's most
recent forward captured into per-layer losses and drops the captures, so no graph outlives the
step. Supported layers: ``TransformerBlock`` (SASRec, BERT4Rec), ``StochasticBlock`` (STOSA, mean
stream) and ``GridTransformerLayer`` (the ADT grid supernet), directly in the model's layer list
or wrapped one per entry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ...models.layers import (Dropout, FeedForward, MultiHeadAttention, TransformerBlock, attention_mask,
                             check_heads, init_weights)
from ...models.stosa import StochasticBlock
from .grid_supernet import CopiedGridBlock
from ...ops import GridTransformerLayer
from ...ops.modules import attention as dot_product_attention

_LAYER_LISTS = ("encoder.blocks", "blocks", "layers")


@dataclass
class _Attention:
    context: nn.Module  # its first input is the per-head context [B, L, d] (per corner: [4, B, L, d])
    num_heads: int
    grid_size: int | None = None  # set for grid layers: the 4 corners' contexts are blended
    # A CopiedGridBlock: one context module per grid point; the corners that ran are blended.
    copies: CopiedGridBlock | None = None
    candidates: list[nn.Module] | None = None


def _attention_of(block: nn.Module) -> _Attention | None:
    if isinstance(block, CopiedGridBlock):
        per_candidate = [_attention_of(candidate) for candidate in block.candidates]
        if any(a is None for a in per_candidate):
            return None
        return _Attention(per_candidate[0].context, per_candidate[0].num_heads, block.grid_size, block,
                          [a.context for a in per_candidate])
    found = [m for m in block.modules() if isinstance(m, (TransformerBlock, StochasticBlock, GridTransformerLayer))]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"ADT objectives: a {type(block).__name__} layer holds {len(found)} attention layers; "
                         "expected one per layer, so that its per-head context is defined")
    layer = found[0]
    if isinstance(layer, GridTransformerLayer):
        return _Attention(layer.attn_out, layer.n_heads, layer.grid_size)
    if isinstance(layer, StochasticBlock):  # the mean stream carries the representation ADT disentangles
        return _Attention(layer.attention.mean_out, layer.attention.num_heads)
    return _Attention(layer.attention.out, layer.attention.num_heads)


def _layers_and_attentions(model: nn.Module) -> tuple[nn.ModuleList, list[_Attention]]:
    for path in _LAYER_LISTS:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers):
            attentions = [_attention_of(layer) for layer in layers]
            if all(a is not None for a in attentions):
                return layers, attentions
    raise ValueError(f"{type(model).__name__} has no attention layers (looked for {', '.join(_LAYER_LISTS)}): "
                     "the ADT objectives need a Transformer backbone (SASRec, BERT4Rec, STOSA or a grid supernet)")


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of [B, L] values over real positions (masked_fill keeps padded values out of gradients)."""
    return values.masked_fill(~valid, 0.0).sum() / valid.sum().clamp_min(1)


class _CrossAttention(nn.Module):
    """Multi-head attention from the decoder to the encoder's output (Eq. 10)."""

    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float):
        super().__init__()
        check_heads(hidden_size, num_heads)
        self.num_heads, self.attn_dropout = num_heads, Dropout(attn_dropout)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        batch, length, hidden = x.shape
        q = self.query(x).view(batch, length, self.num_heads, -1).transpose(1, 2)
        k, v = self.key_value(memory).view(batch, memory.shape[1], 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        context = dot_product_attention(q, k, v, mask, self.attn_dropout)
        return self.out(context.transpose(1, 2).reshape(batch, length, hidden))


class _DecoderLayer(nn.Module):
    """One pre-LN decoder layer, literally Eqs. 8-11."""

    def __init__(self, hidden_size: int, num_heads: int, inner_size: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.self_norm, self.cross_norm, self.ffn_norm = (nn.LayerNorm(hidden_size) for _ in range(3))
        self.self_attention = MultiHeadAttention(hidden_size, num_heads, attn_dropout)
        self.cross_attention = _CrossAttention(hidden_size, num_heads, attn_dropout)
        self.feed_forward = FeedForward(hidden_size, inner_size)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, self_mask: Tensor, cross_mask: Tensor) -> Tensor:
        x = x + self.dropout(self.self_attention(self.self_norm(x), self_mask))  # Eq. 8
        x = self.cross_norm(x)  # Eq. 9
        x = x + self.dropout(self.cross_attention(x, memory, cross_mask))  # Eq. 10
        return x + self.dropout(self.feed_forward(self.ffn_norm(x)))  # Eq. 11


class DisentanglementObjectives(nn.Module):
    """ADT's independence (Eqs. 6-7) and reconstruction (Eqs. 8-12) losses for one model."""

    def __init__(self, model: nn.Module, *, independence: bool = True, reconstruction: bool = True):
        super().__init__()
        layers, attentions = _layers_and_attentions(model)
        if independence:
            for index, attention in enumerate(attentions):
                if attention.num_heads < 2:
                    raise ValueError(f"{type(model).__name__} layer {index} has {attention.num_heads} attention "
                                     "head: the independence objective classifies heads and needs at least 2 "
                                     "per layer (use independence=False)")
        self.independence, self.reconstruction = independence, reconstruction
        self._attentions = attentions  # a plain list: the model's modules must not become ours
        self._captures: list[dict[str, Tensor]] = [{} for _ in layers]
        self._required = [{"input"} | ({"context"} if independence else set()) for _ in layers]
        if reconstruction:
            self._required[-1].add("output")
        self._hooks = []
        for index, layer in enumerate(layers):
            self._hooks.append(layer.register_forward_pre_hook(partial(self._capture_input, index)))
            if independence and attentions[index].candidates is not None:
                for grid_index, context in enumerate(attentions[index].candidates):
                    self._hooks.append(context.register_forward_pre_hook(
                        partial(self._capture_candidate_context, index, grid_index)))
            elif independence:
                self._hooks.append(attentions[index].context.register_forward_pre_hook(
                    partial(self._capture_context, index), with_kwargs=True))
        if reconstruction:
            self._hooks.append(layers[-1].register_forward_hook(self._capture_output))
        # Parameters of the objectives only: the trainer optimises them and drops them after training.
        if independence:  # one head classifier per layer, shared across positions (Eq. 6)
            self.classifiers = nn.ModuleList(  # context width: in_features of nn.Linear and GridLinear alike
                nn.Linear(a.context.weight.shape[-1] // a.num_heads, a.num_heads) for a in attentions)
        if reconstruction:
            c = model.config
            attn_dropout = getattr(c, "attn_dropout", c.dropout)
            self.decoder = nn.ModuleList(_DecoderLayer(c.hidden_size, c.num_heads, c.inner_size, c.dropout,
                                                       attn_dropout) for _ in layers)
        self.apply(init_weights)  # the backbones' initialisation

    @property
    def num_layers(self) -> int:
        return len(self._captures)

    def remove_hooks(self) -> None:
        """Detaches the module from the model (after training, when the objectives are dropped)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    # Positional first inputs: every supported layer takes its hidden states first.
    def _capture_input(self, index: int, module: nn.Module, args: tuple) -> None:
        self._captures[index] = {"input": args[0]}  # a new forward of this layer starts afresh

    def _capture_context(self, index: int, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._captures[index]["context"] = args[0]
        if self._attentions[index].grid_size is not None:  # GridLinear(h, coords, ...)
            self._captures[index]["coords"] = args[1] if len(args) > 1 else kwargs["coords"]

    def _capture_candidate_context(self, index: int, grid_index: int, module: nn.Module, args: tuple) -> None:
        """A CopiedGridBlock's candidate ran: its context joins the layer's blend (Eq. 20)."""
        copies = self._attentions[index].copies
        capture = self._captures[index]
        if "context" not in capture:
            capture["context"] = 0.0
        corners, weights = ops.grid_corners(copies.coordinates, copies.grid_size)
        weight = sum(w for c, w in zip(corners, weights) if c == grid_index)
        capture["context"] = capture["context"] + weight * args[0]

    def _capture_output(self, module: nn.Module, args: tuple, output) -> None:
        self._captures[-1]["output"] = output[0] if isinstance(output, tuple) else output

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Per-layer losses (L_ind [num_layers], L_rec [num_layers]), float32, from what the
        model's most recent forward on `inputs` (int64 [B, L], left-padded with 0) computed.
        A disabled objective gives zeros."""
        captures, self._captures = self._captures, [{} for _ in self._captures]  # hold no graph past this call
        if any(not required <= capture.keys() for required, capture in zip(self._required, captures)):
            raise RuntimeError("DisentanglementObjectives: no complete forward of the model captured; run the "
                               "model on these inputs first (and call the objectives once per model forward)")
        captured_shape = tuple(captures[0]["input"].shape[:2])
        if captured_shape != tuple(inputs.shape):
            raise ValueError(f"DisentanglementObjectives: the model's last forward saw a batch of shape "
                             f"{list(captured_shape)}, got inputs of shape {list(inputs.shape)}; pass the same inputs")
        valid = inputs.to(captures[0]["input"].device) > 0
        zeros = torch.zeros(self.num_layers, device=valid.device)
        independence = self._independence(captures, valid) if self.independence else zeros
        reconstruction = self._reconstruction(captures, valid) if self.reconstruction else zeros
        return independence, reconstruction

    def _independence(self, captures: list[dict[str, Tensor]], valid: Tensor) -> Tensor:
        losses = []
        for capture, attention, classifier in zip(captures, self._attentions, self.classifiers):
            context = capture["context"]
            if attention.grid_size is not None and attention.copies is None:  # the fused supernet layer's context: its 4 corners, blended (Eq. 20)
                _, weights = ops.grid_corners(capture["coords"], attention.grid_size)
                context = ops.mix(context, torch.tensor(weights, dtype=context.dtype, device=context.device))
            heads = attention.num_heads
            logits = classifier(context.unflatten(-1, (heads, -1))).float()  # [B, L, heads, heads]
            labels = torch.arange(heads, device=logits.device).expand(logits.shape[:-1])  # head k -> class k
            cross_entropy = F.cross_entropy(logits.flatten(0, 2), labels.flatten(), reduction="none")
            losses.append(_masked_mean(cross_entropy.view(labels.shape).mean(-1), valid))
        return torch.stack(losses)

    def _reconstruction(self, captures: list[dict[str, Tensor]], valid: Tensor) -> Tensor:
        embedded, memory = captures[0]["input"], captures[-1]["output"]
        # Decoder input: h^0 shifted right by one (Eq. 8's S_dec), padding zeroed first so that a
        # user's first item always follows a zero vector, however much left padding there is.
        x = F.pad(embedded.masked_fill(~valid[..., None], 0.0)[:, :-1], (0, 0, 1, 0))
        self_mask, cross_mask = attention_mask(valid, causal=True), attention_mask(valid, causal=False)
        decoded = []
        for layer in self.decoder:
            x = layer(x, memory, self_mask, cross_mask)
            decoded.append(x)
        # Eq. 12: decoder layer L-l+1 reconstructs the input of encoder layer l (the last, h^0).
        losses = [_masked_mean((out.float() - capture["input"].float()).pow(2).mean(-1), valid)
                  for out, capture in zip(reversed(decoded), captures)]
        return torch.stack(losses)
