"""CANet's model: a router that gives each window one route of the compound backbone.

    forward(inputs)            the backbone (backbone.py) with each row's route: in training a
                               hard Gumbel-softmax sample of the router's logits (one-hot forward,
                               straight-through gradient, temperature tau, noise from the
                               generator the step sets), each group of rows sharing the route's
                               widths run at them; otherwise the argmax, through the masked
                               full-width forward (static shapes, what the export traces). Every
                               depth exit of the row's widths is computed and weighted by its
                               route's one-hot weight, so the router's logits get the gradient of
                               the sampled route's output. [B, L, H], scored by the classifier.
    predict(inputs)            the argmax routes run sliced: each group of rows at its own widths,
                               to its own depth, so a small route costs less time
    predict_traceable(inputs)  the same scores with static shapes (forward in eval mode), for
                               torch.export

A training window's route must not see the items its positions are trained to predict: a strided
window has targets on its last positions only, and in training the router reads the window
without its last ``training_lag`` items (stride - 1), so that the route is a function of what
every position with a target sees. At inference the router reads the whole window, whose next
item is the one predicted.

A model without a router (a fixed route) runs its one route; ``forced_route`` puts every row on
one route of the space (the static routes through the trained supernet)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models.base import SequentialRecommender
from ...models.config import ModelConfig
from ...models.layers import init_weights
from ...nas.relaxations import gumbel_softmax
from .backbone import CompoundBackbone
from .options import MODEL_DEFAULTS
from .router import Router, RouterShape
from .space import RouteSpace


class CANet(SequentialRecommender):
    objective = "causal"
    causal = True
    defaults = MODEL_DEFAULTS  # the fields it reads besides the widths

    def __init__(self, config: ModelConfig, n_items: int, space: RouteSpace, router: RouterShape | None):
        """``router``: None for a fixed route (``space`` then holds one)."""
        super().__init__(config, n_items)
        if router is None and len(space) != 1:
            raise ValueError(f"a CANet without a router runs one route, got a space of {len(space)}")
        self.space = space
        self.backbone = CompoundBackbone(n_items, config.max_len, space, config.num_heads, config.dropout,
                                         config.attn_dropout)
        self.router = None if router is None else Router(router, n_items, config.max_len, len(space),
                                                         config.dropout, config.attn_dropout)
        self.apply(init_weights)
        routes = space.routes
        depths = len(space.depths)
        self.register_buffer("route_embedding", torch.tensor([r.embedding for r in routes]), persistent=False)
        self.register_buffer("route_hidden", torch.tensor([r.hidden for r in routes]), persistent=False)
        # Row r: the routes with route r's widths, one per depth choice (indices are depth-minor).
        self.register_buffer("same_widths", torch.tensor([[r - r % depths + j for j in range(depths)]
                                                          for r in range(len(routes))]), persistent=False)
        self.temperature = 1.0
        self.training_lag = 0  # the last items of a training window the router does not read
        self.generator: torch.Generator | None = None  # the training step's Gumbel noise
        self.forced_route: int | None = None
        self.router_logits: Tensor | None = None  # the last training forward's, for the routing losses

    # -- routing --------------------------------------------------------------------------------
    def routes(self, inputs: Tensor) -> Tensor:
        """Each row's route, int64 [B]: the forced one, else the router's argmax."""
        if self.forced_route is not None or self.router is None:
            route = 0 if self.forced_route is None else self.forced_route
            return torch.full((len(inputs),), route, dtype=torch.long, device=inputs.device)
        return self.router(inputs).argmax(dim=-1)

    def route_weights(self, inputs: Tensor) -> Tensor:
        """[B, routes]: one-hot in the forward pass; in training, a hard Gumbel-softmax sample
        whose gradient reaches the router."""
        if not (self.training and self.router is not None and self.forced_route is None):
            return F.one_hot(self.routes(inputs), len(self.space)).float()
        if self.generator is None:
            raise RuntimeError("CANet samples each training window's route: set the step's generator first")
        self.router_logits = self.router(inputs[:, :inputs.shape[1] - self.training_lag])
        return gumbel_softmax(self.router_logits, self.temperature, hard=True, generator=self.generator)

    @contextlib.contextmanager
    def on_route(self, route: int) -> Iterator[None]:
        """Every row on ``route`` (an index of the space) inside."""
        if not 0 <= route < len(self.space):
            raise ValueError(f"route index {route} is outside the {len(self.space)} routes")
        saved, self.forced_route = self.forced_route, route
        try:
            yield
        finally:
            self.forced_route = saved

    # -- the model --------------------------------------------------------------------------------
    def forward(self, inputs: Tensor) -> Tensor:
        weights = self.route_weights(inputs)
        routes = weights.detach().argmax(dim=-1)
        run = self.backbone.grouped if self.training else self.backbone.masked  # static shapes to export
        exits = run(inputs, self.route_embedding[routes], self.route_hidden[routes])
        depth_weights = weights.gather(1, self.same_widths[routes]).to(exits[0].dtype)
        return sum(depth_weights[:, j, None, None] * state for j, state in enumerate(exits))

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> Tensor:
        return self.backbone.sliced_scores(inputs, self.routes(inputs))

    def predict_traceable(self, inputs: Tensor) -> Tensor:
        return self.score_all(self.forward(inputs)[:, -1])

    def output_embedding(self):
        return self.backbone.classifier.weight, self.backbone.classifier.bias
