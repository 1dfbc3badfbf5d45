"""The interface every backbone implements, so that losses, metrics and the trainer never need
to know which backbone they drive."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .config import ModelConfig


class SequentialRecommender(nn.Module):
    """A model of item sequences. Inputs are int64 [B, L] item ids, left-padded with 0.

    ``forward`` returns one representation per position, [B, L, D]; the score of item j for a
    representation h is ``score_all(h)[..., j]`` (column 0, padding, is never a candidate).
    Dot-product backbones expose ``output_embedding()`` so that the full-softmax loss can run
    fused, without materialising all logits."""

    #: which training batches the loader builds: "causal" (next item at every position) or "cloze"
    objective: ClassVar[str] = "causal"
    #: True for left-to-right models: the output at position i depends on positions <= i only
    causal: ClassVar[bool] = True
    #: loss used when the config names none
    default_loss: ClassVar[str] = "ce"
    #: training windows when the config names none (see TrainConfig.window)
    default_window: ClassVar[str] = "sliding"
    #: ModelConfig values for the fields a config leaves unset (-1, or empty dilations): the
    #: reference implementation's, unless validation scores chose otherwise (see each backbone)
    defaults: ClassVar[dict[str, Any]] = {"num_layers": 2, "num_heads": 2, "inner_size": 256, "dropout": 0.2,
                                          "attn_dropout": 0.2, "dilations": (1, 4)}

    def __init__(self, config: ModelConfig, n_items: int):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        unset = config.unset_fields(self.defaults)
        if unset:
            raise ValueError(f"{', '.join(unset)} must be resolved before building a model: "
                             "use build_model(), which applies the backbone's defaults")
        self.config = config
        self.n_items = n_items

    def output_embedding(self) -> tuple[Tensor, Tensor | None] | None:
        """(weight [n_items + 1, D], bias [n_items + 1] or None) for dot-product scoring, or None
        when items are scored otherwise (STOSA's Wasserstein distance)."""
        raise NotImplementedError

    def score_items(self, hidden: Tensor, items: Tensor) -> Tensor:
        """Scores [..., k] of the given items [..., k] for representations [..., D]."""
        weight, bias = self.output_embedding()
        scores = (hidden.unsqueeze(-2) * weight[items]).sum(-1)
        return scores if bias is None else scores + bias[items]

    def score_all(self, hidden: Tensor) -> Tensor:
        """Scores [N, n_items + 1] of every item for representations [N, D]."""
        weight, bias = self.output_embedding()
        scores = hidden @ weight.t()
        return scores if bias is None else scores + bias

    def forward_last(self, inputs: Tensor, last: int) -> Tensor:
        """``forward(inputs)[:, -last:]``, for a loss whose targets sit on the last ``last``
        positions only (strided windows) and for ranking the next item. Backbones whose final
        layer can skip the other positions override it to do so."""
        return self(inputs)[:, -last:]

    def next_item_hidden(self, inputs: Tensor) -> Tensor:
        """Representation [B, D] that ranks the item following each sequence."""
        return self.forward_last(inputs, 1)[:, -1]

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        """Scores [B, n_items + 1] of every item as the next one (column 0 is padding)."""
        return self.score_all(self.next_item_hidden(inputs))

    def predict_traceable(self, inputs: Tensor) -> Tensor:
        """``predict``'s scores as one graph of static shapes, which torch.export traces. A model
        whose ``predict`` splits rows by their values (CANet's routes) computes them here
        without splitting."""
        return self.predict(inputs)
