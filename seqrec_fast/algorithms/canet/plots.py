"""CANet's plots in RUN_DIR/plots: where the test users go (every route, and each dimension's
choices), how the router's entropy and the easy share move over training, and the routed model
among the static routes of its own supernet (every user on one route)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...nas.search_run import SearchRun, pyplot
from .space import DIMENSIONS, RouteSpace


def plot_route_histogram(run: SearchRun, space: RouteSpace, counts: list[int]) -> Path:
    """The share of the test users on each route, then summed per embedding width, hidden width
    and depth."""
    plt = pyplot()
    shares = np.asarray(counts, dtype=float) / max(sum(counts), 1)
    figure = plt.figure(figsize=(12, 6.5))
    overall = figure.add_subplot(2, 1, 1)
    overall.bar(range(len(space)), shares)
    overall.set_xticks(range(len(space)), [str(route) for route in space.routes], rotation=90, fontsize=7)
    overall.set(ylabel="share of test users", title="routes (embedding x hidden x depth)")
    for position, (name, choices) in enumerate(zip(DIMENSIONS, space.choices)):
        axis = figure.add_subplot(2, 3, 4 + position)
        by_choice = np.zeros(len(choices))
        for index, share in enumerate(shares):
            by_choice[space.choice_indices(index)[position]] += share
        axis.bar([str(choice) for choice in choices], by_choice)
        axis.set(xlabel=name, ylabel="share of test users" if position == 0 else None, title=f"by {name}")
    return run.save_figure(figure, plt, "routes.png")


def plot_routing_history(run: SearchRun, metrics: Path, n_routes: int) -> Path:
    """Per epoch: the mean entropy of the router's distribution and the entropy of the route
    histogram over the validation users (log n_routes when uniform), and the share of easy
    training windows."""
    plt = pyplot()
    records = [r for r in (json.loads(line) for line in metrics.read_text().splitlines() if line.strip())
               if "valid_router_entropy" in r]
    epochs = [r["epoch"] for r in records]
    figure, (entropy, easy) = plt.subplots(1, 2, figsize=(10, 3.8))
    entropy.plot(epochs, [r["valid_router_entropy"] for r in records], marker=".", label="router's distribution (mean)")
    entropy.plot(epochs, [r["valid_histogram_entropy"] for r in records], marker=".", label="argmax route histogram")
    entropy.axhline(math.log(n_routes), color="gray", linestyle="--", linewidth=1, label=f"uniform (log {n_routes})")
    entropy.set(xlabel="epoch", ylabel="entropy (nats)", title="route entropy, validation users")
    entropy.legend(fontsize=8)
    easy.plot(epochs, [r["easy_fraction"] for r in records], marker=".")
    easy.set(xlabel="epoch", ylabel="share", title="easy training windows (smallest route hits)", ylim=(0, 1))
    return run.save_figure(figure, plt, "routing.png")


def plot_static_routes(run: SearchRun, rows: list[dict[str, Any]], found: dict[str, Any], metric: str) -> Path:
    """Validation ``metric`` of every route with all users on it against its multiply-adds, and
    the routed model's (router included)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    macs, scores = [row["multiply_adds"] for row in rows], [row["valid"][metric] for row in rows]
    axis.scatter(macs, scores, s=18, label="every user on one route")
    for row, x, y in zip(rows, macs, scores):
        axis.annotate(row["route"], (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    axis.scatter([found["valid_routing"]["multiply_adds"]], [found["valid"][metric]], s=90, marker="*", color="red",
                 label="routed")
    axis.set(xlabel="multiply-adds to rank all items for one sequence", xscale="log", ylabel=f"validation {metric}",
             title="the routed model among its static routes")
    axis.legend(fontsize=8)
    return run.save_figure(figure, plt, "static_routes.png")
