"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence."""

from __future__ import annotations

from torch import Tensor, nn

from .base import SequentialRecommender
from .config import ModelConfig
from .layers import TransformerEncoder, init_weights


class SASRec(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = {**SequentialRecommender.defaults, "dropout": 0.5, "attn_dropout": 0.5}  # RecBole's SASRec
    # Targets on the last `stride` positions of overlapping windows, each with a context nearly
    # as long as evaluation's: on ml-100k under RecBole's protocol stride 5 (51 windows per batch
    # of 256 targets) beat disjoint windows (test NDCG@10 0.0638 vs 0.0535, HR@10 0.137 vs 0.112,
    # 3 seeds each; benchmarks/results/ml100k_sasrec_windows.json), and forward_last keeps an
    # epoch to about 2.3x theirs.
    default_window = "stride"

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
