"""NextItNet (Yuan et al., WSDM 2019): a stack of residual blocks of dilated causal 1-D
convolutions over the item embeddings, then a linear layer.

As RecBole's NextItNet: the dilation pattern (1, 4) five times (ten blocks, each two convolutions
with dilations d and 2d, kernel 3), no dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import CausalConv1d
from .base import SequentialRecommender
from .config import ModelConfig
from .layers import Dropout, init_weights, residual_is_scaled


class ResidualConvBlock(nn.Module):
    """x + scale * relu(LN(conv_2d(relu(LN(conv_d(x)))))): two causal convolutions with
    dilations d and 2d (the NextItNet block, also NASR's TCN op).

    ``valid`` [B, L, 1] zeroes the padded positions of the inner activation: LayerNorm's bias
    makes them non-zero, and the second convolution would read them into the first real
    positions, so that the amount of left padding would change a real position's output."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, residual: str):
        super().__init__()
        self.conv1 = CausalConv1d(channels, channels, kernel_size, dilation)
        self.norm1 = nn.LayerNorm(channels)
        self.conv2 = CausalConv1d(channels, channels, kernel_size, 2 * dilation)
        self.norm2 = nn.LayerNorm(channels)
        self.scale = nn.Parameter(torch.zeros(())) if residual_is_scaled(residual) else None

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        branch = torch.relu(self.norm1(self.conv1(x))) * valid
        branch = torch.relu(self.norm2(self.conv2(branch)))
        return x + (branch if self.scale is None else self.scale * branch)


class NextItNet(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {**SequentialRecommender.defaults, "num_layers": 5, "dilations": (1, 4), "dropout": 0.0,
                "attn_dropout": 0.0}

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__(config, n_items)
        if not config.dilations or any(d < 1 for d in config.dilations):
            raise ValueError(f"dilations must be positive integers, got {config.dilations}")
        self.items = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        self.dropout = Dropout(config.dropout)
        # The dilation pattern is repeated num_layers times, e.g. (1, 4) x 2 -> 1, 4, 1, 4.
        self.blocks = nn.ModuleList(
            ResidualConvBlock(config.hidden_size, config.kernel_size, dilation, config.residual)
            for _ in range(config.num_layers) for dilation in config.dilations
        )
        self.final = nn.Linear(config.hidden_size, config.hidden_size)
        self.output_items = None if config.tie_weights else nn.Embedding(n_items + 1, config.hidden_size)
        self.apply(init_weights)

    def forward(self, inputs: Tensor) -> Tensor:
        # Padding is zeroed after every block, so a left-padded sequence is computed exactly as
        # if the convolutions zero-padded it: more padding never changes a real position.
        valid = (inputs > 0).unsqueeze(-1).to(self.items.weight.dtype)
        x = self.dropout(self.items(inputs)) * valid
        for block in self.blocks:
            x = block(x, valid) * valid
        return self.final(x) * valid

    def output_embedding(self):
        table = self.items if self.output_items is None else self.output_items
        return table.weight, None
