"""STOSA (Fan et al., WWW 2022): stochastic self-attention. Items and positions are diagonal
Gaussians (a mean and a covariance embedding); attention scores are minus the 2-Wasserstein
distance between query and key distributions, and items are ranked by ascending distance to the
sequence's output distribution.

The representation ``forward`` returns is [B, L, 2d]: the mean and the covariance, concatenated.

As the authors' model: the mean input is ELU(dropout(LayerNorm(item + position))), the
covariance input that + 1; the feed-forward layers use ELU; one block of 4 heads, dropout 0.3 on
the hidden states and none on the attention weights (their published settings). Their encoder
feeds every block the embeddings rather than the previous block's output (a misspelt variable);
here blocks chain."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SequentialRecommender
from .config import ModelConfig
from .layers import Dropout, FeedForward, check_heads, Residual, attention_mask, init_weights, positions_from_first_item, residual_is_scaled


def positive(x: Tensor) -> Tensor:
    """Covariances are kept positive with ELU + 1."""
    return F.elu(x) + 1.0


def wasserstein_pairwise(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distances [..., n, m] between diagonal Gaussians [..., n, d] and
    [..., m, d]: ||mu1 - mu2||^2 + ||sqrt(cov1) - sqrt(cov2)||^2, expanded into matrix products."""
    means = (mean1 * mean1).sum(-1, keepdim=True) + (mean2 * mean2).sum(-1).unsqueeze(-2) - 2 * mean1 @ mean2.transpose(-1, -2)
    std1, std2 = cov1.clamp_min(1e-24).sqrt(), cov2.clamp_min(1e-24).sqrt()
    covs = cov1.sum(-1, keepdim=True) + cov2.sum(-1).unsqueeze(-2) - 2 * std1 @ std2.transpose(-1, -2)
    return means + covs


def wasserstein_elementwise(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance [...] between matching Gaussians [..., d] (broadcasting)."""
    std1, std2 = cov1.clamp_min(1e-24).sqrt(), cov2.clamp_min(1e-24).sqrt()
    return ((mean1 - mean2) ** 2).sum(-1) + ((std1 - std2) ** 2).sum(-1)


class WassersteinAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, attn_dropout: float):
        super().__init__()
        check_heads(hidden_size, num_heads)
        self.num_heads = num_heads
        self.mean_qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.cov_qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.mean_out = nn.Linear(hidden_size, hidden_size)
        self.cov_out = nn.Linear(hidden_size, hidden_size)
        self.dropout = Dropout(attn_dropout)

    def _heads(self, projection: nn.Linear, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        return projection(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, mean: Tensor, cov: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        batch, length, hidden = mean.shape
        q_mean, k_mean, v_mean = self._heads(self.mean_qkv, mean)
        q_cov, k_cov, v_cov = (positive(t) for t in self._heads(self.cov_qkv, cov))
        scores = -wasserstein_pairwise(q_mean, q_cov, k_mean, k_cov) / math.sqrt(q_mean.shape[-1])
        probs = self.dropout(torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1))
        # Mean of a weighted sum of independent Gaussians: A·mu; its covariance: A²·Sigma.
        mean_context = (probs @ v_mean).transpose(1, 2).reshape(batch, length, hidden)
        cov_context = ((probs * probs) @ v_cov).transpose(1, 2).reshape(batch, length, hidden)
        return self.mean_out(mean_context), self.cov_out(cov_context)


class StochasticBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, scaled = config.hidden_size, residual_is_scaled(config.residual)
        self.attention = WassersteinAttention(d, config.num_heads, config.attn_dropout)
        self.mean_residual = Residual(d, config.dropout, scaled)
        self.cov_residual = Residual(d, config.dropout, scaled)
        self.mean_ffn = FeedForward(d, config.inner_size, nn.ELU)
        self.cov_ffn = FeedForward(d, config.inner_size, nn.ELU)
        self.mean_ffn_residual = Residual(d, config.dropout, scaled)
        self.cov_ffn_residual = Residual(d, config.dropout, scaled)

    def forward(self, mean: Tensor, cov: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        mean_update, cov_update = self.attention(mean, cov, mask)
        mean = self.mean_residual(mean, mean_update)
        cov = self.cov_residual(cov, cov_update)
        mean = self.mean_ffn_residual(mean, self.mean_ffn(mean))
        cov = positive(self.cov_ffn_residual(cov, self.cov_ffn(cov)))
        return mean, cov


class STOSA(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {**SequentialRecommender.defaults, "num_layers": 1, "num_heads": 4, "inner_size": 256,
                "dropout": 0.3, "attn_dropout": 0.0}
    default_loss = "stosa"

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        d = config.hidden_size
        self.item_mean = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.item_cov = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position_mean = nn.Embedding(config.max_len, d)
        self.position_cov = nn.Embedding(config.max_len, d)
        self.mean_norm = nn.LayerNorm(d)
        self.cov_norm = nn.LayerNorm(d)
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(StochasticBlock(config) for _ in range(config.num_layers))
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.shape[1] > self.position_mean.num_embeddings:
            raise ValueError(f"sequence length {inputs.shape[1]} exceeds the model's max_len {self.position_mean.num_embeddings}")
        valid = inputs > 0
        positions = positions_from_first_item(valid)
        mean = F.elu(self.dropout(self.mean_norm(self.item_mean(inputs) + self.position_mean(positions))))
        cov = positive(self.dropout(self.cov_norm(self.item_cov(inputs) + self.position_cov(positions))))
        mask = attention_mask(valid, causal=True)
        for block in self.blocks:
            mean, cov = block(mean, cov, mask)
        return torch.cat([mean, cov], dim=-1)

    def output_embedding(self):
        return None  # items are ranked by Wasserstein distance, not by a dot product

    def item_distributions(self, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if items is None:
            return self.item_mean.weight, positive(self.item_cov.weight)
        return self.item_mean(items), positive(self.item_cov(items))

    def distance_to_items(self, hidden: Tensor, items: Tensor) -> Tensor:
        """Squared Wasserstein distances [..., k] from representations [..., 2d] to items [..., k]."""
        mean, cov = hidden.unsqueeze(-2).chunk(2, dim=-1)
        return wasserstein_elementwise(mean, cov, *self.item_distributions(items))

    def score_items(self, hidden: Tensor, items: Tensor) -> Tensor:
        return -self.distance_to_items(hidden, items)

    def score_all(self, hidden: Tensor) -> Tensor:
        mean, cov = hidden.chunk(2, dim=-1)
        return -wasserstein_pairwise(mean, cov, *self.item_distributions())
