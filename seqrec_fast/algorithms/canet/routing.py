"""Where a trained CANet sends each user, and how well one route does for everyone.

    split_routes(model, dataset, config, split)      every user of a split, its route (the
                                                     router's argmax) and the entropy of the
                                                     router's distribution
    route_summary(routes, entropies, n_routes)       route counts, the mean entropy and the
                                                     entropy of the route histogram
    evaluate_route(model, dataset, config, split, r) the split's metrics with every user on
                                                     route r (a static route of the supernet)

Routes are read from a split's inputs only: routing the test users reads no test target."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...train.config import TrainConfig
from ...train.evaluation import evaluate_split
from .network import CANet


@torch.no_grad()
def split_routes(model: CANet, dataset, config: TrainConfig, split: str,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users ascending, their routes, the entropy in nats of the router's distribution for
    each; 0 without a router) of every user of ``split``."""
    loader = dataset.eval_loader(split=split, batch_size=config.eval_batch_size, max_len=config.model.max_len,
                                 seed=config.seed)
    was_training = model.training
    model.eval()
    users, routes, entropies = [], [], []
    try:
        for batch in loader:
            inputs = torch.from_numpy(np.asarray(batch["inputs"])).long().to(device)
            if model.router is None or model.forced_route is not None:
                chosen, entropy = model.routes(inputs), torch.zeros(len(inputs), device=device)
            else:
                log_p = torch.log_softmax(model.router(inputs).float(), dim=-1)
                chosen, entropy = log_p.argmax(dim=-1), -(log_p.exp() * log_p).sum(dim=-1)
            users.append(np.asarray(batch["users"], dtype=np.int64))
            routes.append(chosen.cpu().numpy())
            entropies.append(entropy.cpu().numpy())
    finally:
        model.train(was_training)
    users, routes, entropies = (np.concatenate(parts) for parts in (users, routes, entropies))
    order = np.argsort(users, kind="stable")
    return users[order], routes[order], entropies[order]


def route_summary(routes: np.ndarray, entropies: np.ndarray, n_routes: int) -> dict[str, Any]:
    """How many users each route takes, the mean entropy of the router's distributions and the
    entropy of the route histogram (nats; log n_routes when every route takes as many)."""
    counts = np.bincount(routes, minlength=n_routes)
    shares = counts[counts > 0] / max(len(routes), 1)
    return {"route_counts": counts.tolist(), "router_entropy": float(entropies.mean()) if len(entropies) else 0.0,
            "histogram_entropy": float(-(shares * np.log(shares)).sum())}


def evaluate_route(model: CANet, dataset, config: TrainConfig, split: str, device: torch.device,
                   route: int) -> dict[str, float]:
    """The metrics of ``split`` with every user on ``route`` (an index of the model's space)."""
    with model.on_route(route):
        return evaluate_split(model, dataset, config, split, device)
