"""CANet's search: the router and the compound backbone trained jointly, the checkpoint selected
on validation with argmax routing and tested once; then what the selected model does per route.

    search(train, options, dataset) -> SearchResult   the joint training in RUN_DIR/supernet (a
                                                       trainer run: early stopping on validation,
                                                       one test), then every route scored on
                                                       validation with all users on it, the routes
                                                       of the validation and test users
                                                       (RUN_DIR/test_routes.npz), multiply-adds,
                                                       scoring times routed and on the smallest and
                                                       largest routes, and the plots
    derive(result, train) -> ModelSpec                 the trained model: its routes and router
    build_canet(spec, n_items)                         the model of such a spec
    retrain(run_dir)                                   refused: the search trained and tested the
                                                       model, which evaluate, recommend and export
                                                       read from RUN_DIR

A search killed at any point resumes to the same result: the trainer resumes exactly, and each
batch's Gumbel noise is a function of (seed, stream, epoch, batch)."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from typing import Any

import numpy as np
import torch

from ...atomic_io import atomic_write_bytes
from ...models import ModelConfig, ModelSpec
from ...nas.cost import sequence_router
from ...nas.relaxations import WEIGHT_STREAM, keyed_generator
from ...nas.search_loop import default_log, open_search
from ...nas.search_run import SPEC, SUPERNET, SearchResult, SearchRun
from ...nas.timing import scoring_inputs, scoring_ms
from ...train.callbacks import TrainerCallbacks
from ...train.config import TrainConfig
from ...train.distributed import resolve_device
from ...train.evaluation import load_trained_model
from ...train.trainer import BEST, CHECKPOINT_DIR, LAST, METRICS, RESULT, Trainer
from .backbone import FEED_FORWARD
from .losses import RoutingLosses
from .network import CANet
from .options import CANetConfig
from .plots import plot_route_histogram, plot_routing_history, plot_static_routes
from .router import RouterShape
from .routing import evaluate_route, route_summary, split_routes
from .space import RouteSpace

NAME = "canet"
TEST_ROUTES = "test_routes.npz"  # every test user's route, in the order of the trainer's test_ranks.npz


# -- the model -------------------------------------------------------------------------------------
def model_config(train: TrainConfig, options: CANetConfig) -> ModelConfig:
    """The backbone's configuration: SASRec's length, heads and dropout at the widest route's
    widths, as deep as the deepest route, feed-forwards 4 times as wide, scaled residuals and
    an untied classifier."""
    model = train.model
    if model.name != "sasrec":
        raise ValueError(f"CANet routes through a weight-sliced SASRec: the backbone must be sasrec, got {model.name}")
    if options.routed and train.resolved_window() != "stride":
        raise ValueError(f"window: CANet's router reads a training window up to its first target, so it trains on "
                         f"strided windows (targets on the last --stride positions), got {train.resolved_window()!r}")
    deepest = max(options.depth_choices)
    if deepest > model.num_layers:
        raise ValueError(f"depth_choices: {deepest} exceeds the backbone's {model.num_layers} layers (num_layers)")
    for width in options.hidden_choices:
        if width % model.num_heads:
            raise ValueError(f"hidden_choices: {width} is not a multiple of the {model.num_heads} heads (num_heads)")
    space = options.trained_space()
    return dataclasses.replace(model, hidden_size=max(space.hiddens), num_layers=max(space.depths),
                               inner_size=FEED_FORWARD * max(space.hiddens), residual="scaled", tie_weights=False)


def build_canet(spec: ModelSpec, n_items: int) -> CANet:
    """The model of a spec that :func:`derive` wrote."""
    space, router = spec.searched.get("space"), spec.searched.get("router", {})
    if not isinstance(space, dict) or not {"embedding", "hidden", "depth"} <= set(space):
        raise ValueError(f"a CANet model spec names its routes under searched.space (embedding, hidden and depth "
                         f"choices), got {space!r}")
    return CANet(spec.model, n_items, RouteSpace(tuple(space["embedding"]), tuple(space["hidden"]),
                                                 tuple(space["depth"])),
                 None if router is None else RouterShape(**router))


def spec_of(model: ModelConfig, options: CANetConfig) -> ModelSpec:
    """The model the search trains: the backbone with its routes and, unless a route is fixed, the
    router."""
    router = RouterShape(options.router_width, options.router_heads, options.router_inner)
    return ModelSpec(model, algorithm=NAME, searched={"space": options.trained_space().to_dict(),
                                                      "router": dataclasses.asdict(router) if options.routed else None})


def derive(result: SearchResult, train: TrainConfig) -> ModelSpec:
    """The trained model itself: the backbone of ``train`` with the routes and router found."""
    found = result.architecture
    return ModelSpec(train.model, algorithm=NAME, searched={"space": found["space"], "router": found["router"]})


# -- the joint training ------------------------------------------------------------------------------
class JointTraining(TrainerCallbacks):
    """The CANet model, each batch's Gumbel noise, the routing losses, and per epoch the easy
    share, the losses and where the validation users go."""

    def __init__(self, spec: ModelSpec, options: CANetConfig, train: TrainConfig, dataset):
        self.spec, self.options, self.train, self.dataset = spec, options, train, dataset
        self.model: CANet | None = None
        self.losses: RoutingLosses | None = None

    def build_model(self, config, n_items: int) -> CANet:
        self.model = build_canet(self.spec, n_items)
        self.model.temperature = self.options.temperature
        if self.model.router is not None:  # strided windows: their targets sit on the last `stride` positions
            self.model.training_lag = config.loader_stride() - 1
        return self.model

    def auxiliary(self, model: CANet) -> RoutingLosses | None:
        if model.router is None:
            return None
        options = self.options
        self.losses = RoutingLosses(model, options.uniform_weight, options.guide_weight, options.guide_k,
                                    self.train.filter_history)
        return self.losses

    def before_batch(self, epoch: int, index: int) -> None:
        if self.model.router is not None:
            device = self.model.route_hidden.device
            self.model.generator = keyed_generator(device, self.train.seed, WEIGHT_STREAM, epoch, index)

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        if self.losses is None:
            return {}
        device = self.model.route_hidden.device
        _, routes, entropies = split_routes(self.model, self.dataset, self.train, "valid", device)
        valid = {f"valid_{key}": value for key, value in route_summary(routes, entropies, len(self.model.space)).items()}
        return {**self.losses.epoch_summary(), **valid}


def training_config(train: TrainConfig, spec: ModelSpec, run: SearchRun) -> TrainConfig:
    config = copy.deepcopy(train)
    config.out = str(run.path(SUPERNET))
    config.model = spec.model
    return config


# -- what the selected model does per route -----------------------------------------------------------
def score_routes(model: CANet, train: TrainConfig, dataset, device) -> list[dict[str, Any]]:
    """Every route with every user on it: its validation metrics, multiply-adds and parameters
    (cost model)."""
    rows = []
    for index, route in enumerate(model.space.routes):
        cost = model.space.cost(index, dataset.n_items, train.model.max_len)
        valid = evaluate_route(model, dataset, train, "valid", device, index)
        rows.append({"route": str(route), "multiply_adds": cost.multiply_adds, "params": cost.params, "valid": valid})
    return rows


def scoring_times(model: CANet, inputs: torch.Tensor) -> dict[str, float]:
    """Milliseconds to rank all items for ``inputs`` routed (router included), and with every
    row on the smallest and on the largest route."""
    times = {"routed": scoring_ms(model, inputs)}
    for name, route in (("smallest", 0), ("largest", len(model.space) - 1)):
        with model.on_route(route):
            times[name] = scoring_ms(model, inputs)
    return times


def routing_of(model: CANet, train: TrainConfig, dataset, device, split: str, route_macs: np.ndarray,
               router_macs: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Where the users of ``split`` go, and their mean multiply-adds (route and router); with the
    users and their routes."""
    users, routes, entropies = split_routes(model, dataset, train, split, device)
    summary = route_summary(routes, entropies, len(model.space))
    return {**summary, "multiply_adds": float(route_macs[routes].mean()) + router_macs}, users, routes


def search(train: TrainConfig, options: CANetConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock."""
    log = log or default_log
    train = dataclasses.replace(train, model=model_config(train, options))
    with open_search(NAME, train, options.to_dict(), dataset, resume=resume, overwrite=overwrite, log=log) as run:
        return _search(run, train, options, spec_of(train.model, options), dataset, log)


def _search(run: SearchRun, train: TrainConfig, options: CANetConfig, spec: ModelSpec, dataset, log) -> SearchResult:
    model_dir = run.path(SUPERNET)
    if not (model_dir / RESULT).is_file():
        what = f"{len(options.space())} routes and a router" if options.routed else f"the fixed route {options.route}"
        log(f"CANet: training {what} jointly ({train.epochs} epochs at most, early stopping on validation)")
        Trainer(training_config(train, spec, run), dataset, resume=(model_dir / CHECKPOINT_DIR / LAST).is_file(),
                log=log, callbacks=JointTraining(spec, options, train, dataset)).fit()
    trained = json.loads((model_dir / RESULT).read_text())
    started = time.perf_counter()
    device = resolve_device(train.device)
    model = load_trained_model(spec, model_dir / CHECKPOINT_DIR / BEST, dataset.n_items).to(device).eval()
    log(f"CANet: scoring the {len(model.space)} routes of the selected model on validation")
    found = {"space": model.space.to_dict(), "route": options.route, "router": spec.searched["router"],
             "params": sum(p.numel() for p in model.parameters()), "valid": trained["valid"],
             "best_epoch": trained["best_epoch"], "epochs_run": trained["epochs_run"],
             **route_report(run, model, train, dataset, device)}
    if options.routed:
        plot_route_histogram(run, model.space, found["test_routing"]["route_counts"])
        plot_routing_history(run, model_dir / METRICS, len(model.space))
        plot_static_routes(run, found["routes"], found, train.metric)
    result = SearchResult(algorithm=NAME, architecture=found, fitness=trained["valid"][train.metric],
                          metric=train.metric, evaluations=len(found["routes"]),
                          supernet_checkpoint=str((model_dir / CHECKPOINT_DIR / BEST).relative_to(run.root)),
                          search_s=round(trained["elapsed_s"] + time.perf_counter() - started, 3),
                          run_dir=str(run.root), test=trained["test"])
    run.write_result(result)
    derive(result, train).save(run.path(SPEC))
    return result


def route_report(run: SearchRun, model: CANet, train: TrainConfig, dataset, device) -> dict[str, Any]:
    """What the selected model does per route: every route scored with all users on it, where
    the validation and test users go and what they cost (RUN_DIR/test_routes.npz: each test
    user's route), and the measured scoring times."""
    rows = score_routes(model, train, dataset, device)
    route_macs = np.array([row["multiply_adds"] for row in rows])
    router = None if model.router is None else model.router.shape
    router_cost = None if router is None else sequence_router(router.width, router.inner, len(model.space),
                                                              dataset.n_items, train.model.max_len)
    router_macs = 0 if router_cost is None else router_cost.multiply_adds
    valid_routing, _, _ = routing_of(model, train, dataset, device, "valid", route_macs, router_macs)
    test_routing, users, routes = routing_of(model, train, dataset, device, "test", route_macs, router_macs)
    atomic_write_bytes(run.path(TEST_ROUTES), lambda handle: np.savez(handle, users=users, routes=routes))
    return {"router_cost": None if router_cost is None else dataclasses.asdict(router_cost),
            "valid_routing": valid_routing, "test_routing": test_routing,
            "full_multiply_adds": int(route_macs[-1]),  # the largest route's, without a router
            "scoring_ms": scoring_times(model, scoring_inputs(dataset, train)), "routes": rows}


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False,
            fast_dev_run: bool = False) -> dict[str, Any]:
    raise ValueError(f"{run_dir} holds a canet search, which trains and tests its model itself (in {SUPERNET}/): "
                     f"there is nothing to retrain; seqrec-fast evaluate, recommend and export read {run_dir}")
