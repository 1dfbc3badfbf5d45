"""EASRec's search and retraining.

    search(train, options, dataset) -> SearchResult   the supernet's weights stepped on training
                                                       batches under a Gumbel-softmax mixture of
                                                       widths and depths, alpha and beta every f
                                                       steps on held-out batches with the FLOPs
                                                       penalty added; the checkpoint selected on
                                                       validation of its most probable
                                                       architecture; then every candidate scored
    derive(result, train) -> ModelSpec                 the chosen width and depth as a model
    retrain(run_dir) -> dict                           that model from its slice of the supernet
                                                       (or from scratch), selected on validation,
                                                       tested once

Everything lands in a :class:`~seqrec_fast.nas.search_run.SearchRun` directory and resumes after
a kill with the same result: the supernet through the trainer's exact resume, its Gumbel samples
as functions of (seed, stream, epoch, batch) and its temperature as one of the step, so they need no
state of their own. A fixed ``--architecture`` skips the supernet and is trained from scratch by
``retrain``."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from typing import Any

import torch

from ...models import ModelConfig, ModelSpec
from ...nas.cost import Cost
from ...nas.relaxations import ARCHITECTURE_STREAM, WEIGHT_STREAM, TemperatureSchedule, keyed_generator
from ...nas.search_loop import default_log, load_search_config, open_search, retrain_search
from ...nas.search_run import SPEC, SUPERNET, SearchResult, SearchRun
from ...nas.timing import scoring_inputs, scoring_ms
from ...options import parse_options
from ...train.callbacks import ArchitectureStep, TrainerCallbacks
from ...train.checkpoint import load_checkpoint
from ...train.config import TrainConfig
from ...train.distributed import resolve_device
from ...train.evaluation import evaluate_split
from ...train.trainer import BEST, CHECKPOINT_DIR, LAST, METRICS, RESULT, Trainer
from .network import ElasticSASRec
from .options import EASRecConfig
from .plots import plot_architecture_history, plot_pareto
from .space import GATE_LAYERS, HEADS, Space, architecture_cost

NAME = "easrec"
FINAL_TEMPERATURE = 0.01  # the paper's floor


# -- the space and its costs -----------------------------------------------------------------------
def model_config(train: TrainConfig, options: EASRecConfig) -> ModelConfig:
    """The supernet's configuration: SASRec's widths, length and dropout, ``options.layers``
    layers and 4 heads."""
    if train.model.name != "sasrec":
        raise ValueError(f"EASRec searches an elastic linear-attention SASRec: the backbone must be sasrec, got "
                         f"{train.model.name}")
    return dataclasses.replace(train.model, num_layers=options.layers, num_heads=HEADS, tie_weights=True)


def space_of(model: ModelConfig, options: EASRecConfig) -> Space:
    return Space(options.keep, model.hidden_size, model.inner_size, options.layers)


def candidate_costs(space: Space, gates: str, n_items: int, max_len: int) -> dict[tuple[int, int], Cost]:
    """Every candidate's parameters and multiply-adds to rank all items after one sequence."""
    return {(i, depth): architecture_cost(space.widths[i], space.inners[i], depth, gates, n_items, max_len)
            for i, depth in space.architectures}


def within_budget(space: Space, costs: dict[tuple[int, int], Cost], budget: int) -> list[list[bool]] | None:
    """[width][depth - 1]: the candidates a budget of ``budget`` multiply-adds allows (None: no
    budget); a budget below every candidate is refused."""
    if not budget:
        return None
    smallest = min(space.architectures, key=lambda candidate: costs[candidate].multiply_adds)
    if budget < costs[smallest].multiply_adds:
        raise ValueError(f"flops_budget {budget:,} multiply-adds is below the smallest architecture's "
                         f"{costs[smallest].multiply_adds:,} ({space.architecture(*smallest)}): raise it, or leave it "
                         "0 for the penalty of Eq. 15")
    return [[costs[(i, depth)].multiply_adds <= budget for depth in range(1, space.layers + 1)]
            for i in range(len(space.keep))]


def supernet(config: ModelConfig, n_items: int, space: Space, gates: str,
             allowed: list[list[bool]] | None) -> ElasticSASRec:
    return ElasticSASRec(config, n_items, gates, list(zip(space.widths, space.inners)), allowed)


def derived_config(model: ModelConfig, space: Space, i: int, depth: int) -> ModelConfig:
    return dataclasses.replace(model, hidden_size=space.widths[i], inner_size=space.inners[i], num_layers=depth)


def inherited_weights(supernet_state: dict[str, torch.Tensor], derived: ElasticSASRec) -> dict[str, torch.Tensor]:
    """The supernet's weights cut to the derived model's: each tensor's leading prefix of the
    derived tensor's shape (the first w features, D_w inner units, j layers)."""
    return {name: supernet_state[name][tuple(slice(0, size) for size in tensor.shape)].clone()
            for name, tensor in derived.state_dict().items()}


def build_derived(spec: ModelSpec, n_items: int) -> ElasticSASRec:
    gates = spec.searched.get("gates")
    if gates not in GATE_LAYERS:
        raise ValueError(f"an EASRec model spec names its gates ({', '.join(GATE_LAYERS)}) under searched.gates, "
                         f"got {gates!r}")
    return ElasticSASRec(spec.model, n_items, gates)


# -- the supernet's training -----------------------------------------------------------------------
class SearchCallbacks(TrainerCallbacks):
    """Weights on training batches under the step's Gumbel-softmax mixture; alpha and beta on
    held-out batches, with the FLOPs penalty."""

    def __init__(self, options: EASRecConfig, space: Space, costs: dict[tuple[int, int], Cost],
                 allowed: list[list[bool]] | None, seed: int):
        self.options, self.space, self.costs, self.allowed, self.seed = options, space, costs, allowed, seed
        self.macs = torch.tensor([[float(costs[(i, depth)].multiply_adds) for depth in range(1, space.layers + 1)]
                                  for i in range(len(space.keep))])
        self.model: ElasticSASRec | None = None
        self.steps_per_epoch = 1
        self.temperature = TemperatureSchedule(1.0, FINAL_TEMPERATURE, 1, kind="linear")

    def build_model(self, config, n_items: int) -> ElasticSASRec:
        self.model = supernet(config.model, n_items, self.space, self.options.gates, self.allowed)
        return self.model

    def schedule(self, epochs: int, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        steps = self.options.temperature_steps(epochs * steps_per_epoch)
        self.temperature = TemperatureSchedule(1.0, FINAL_TEMPERATURE, steps, kind="linear")

    def before_batch(self, epoch: int, index: int) -> None:
        step = epoch * self.steps_per_epoch + index
        generator = keyed_generator(self.model.alpha.device, self.seed, WEIGHT_STREAM, epoch, index)
        with torch.no_grad():
            self.model.sample(self.temperature(step), generator)

    def architecture(self, model: ElasticSASRec) -> ArchitectureStep:
        options = self.options
        self.macs = self.macs.to(model.alpha)
        return ArchitectureStep(parameters=[model.alpha, model.beta], every=options.architecture_every,
                                loss=self.architecture_loss, lr=lambda steps: options.architecture_lr,
                                weight_decay=options.architecture_weight_decay,
                                source=options.architecture_source, held_out_users=options.held_out_users)

    def architecture_loss(self, train_step, inputs, targets, negatives, index: int) -> torch.Tensor:
        step = (index + 1) * self.options.architecture_every  # the weight steps taken so far
        generator = keyed_generator(self.model.alpha.device, self.seed, ARCHITECTURE_STREAM, index)
        p, q = self.model.sample(self.temperature(step), generator)
        return train_step(inputs, targets, negatives) + self.penalty(p, q)

    def penalty(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """lambda (L_t / L) sum_ij p_i q_j FLOPs_ij / FLOPs_full (Eq. 15), L_t the depth beta
        prefers now; with a budget B, lambda max(0, sum_ij p_i q_j MACs_ij / B - 1)."""
        expected = (p[:, None] * q[None, :] * self.macs).sum()
        options = self.options
        if options.flops_budget:
            return options.flops_lambda * torch.relu(expected / options.flops_budget - 1.0)
        depth = int(self.model.beta.detach().argmax()) + 1
        return options.flops_lambda * depth / self.space.layers * expected / self.macs.max()

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        model = self.model
        i, depth = model.chosen()
        return {"temperature": self.temperature(epoch * self.steps_per_epoch),
                "alpha": torch.softmax(model.alpha.detach(), dim=0).cpu().tolist(),
                "beta": torch.softmax(model.beta.detach(), dim=0).cpu().tolist(),
                "architecture": str(self.space.architecture(i, depth)),
                "multiply_adds": self.costs[(i, depth)].multiply_adds}


def supernet_config(train: TrainConfig, options: EASRecConfig, run: SearchRun) -> TrainConfig:
    config = copy.deepcopy(train)
    config.out = str(run.path(SUPERNET))
    config.epochs = options.search_epochs
    config.ema_decay = 0.0  # alpha and beta are selected with the weights, not averaged
    return config


# -- scoring the candidates ------------------------------------------------------------------------
def measured(model: ElasticSASRec, cost: Cost, inputs: torch.Tensor) -> dict[str, Any]:
    return {"multiply_adds": cost.multiply_adds, "params": cost.params, "scoring_ms": scoring_ms(model, inputs)}


def score_candidates(state: dict[str, torch.Tensor], train: TrainConfig, options: EASRecConfig, space: Space,
                     costs: dict[tuple[int, int], Cost], dataset, device) -> list[dict[str, Any]]:
    """Every candidate with the supernet's weights: validation metrics, cost and scoring time."""
    inputs = scoring_inputs(dataset, train)
    rows = []
    for i, depth in space.architectures:
        model = ElasticSASRec(derived_config(train.model, space, i, depth), dataset.n_items, options.gates)
        model.load_state_dict(inherited_weights(state, model))
        valid = evaluate_split(model.to(device), dataset, train, "valid", device)
        rows.append({**space.describe(i, depth), "valid": valid, **measured(model, costs[(i, depth)], inputs)})
    return rows


# -- the search ------------------------------------------------------------------------------------
def search(train: TrainConfig, options: EASRecConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock."""
    log = log or default_log
    train = dataclasses.replace(train, model=model_config(train, options))
    space = space_of(train.model, options)
    costs = candidate_costs(space, options.gates, dataset.n_items, train.model.max_len)
    allowed = within_budget(space, costs, options.flops_budget)
    with open_search(NAME, train, options.to_dict(), dataset, resume=resume, overwrite=overwrite, log=log) as run:
        return _search(run, train, options, space, costs, allowed, dataset, log)


def _search(run: SearchRun, train: TrainConfig, options: EASRecConfig, space: Space,
            costs: dict[tuple[int, int], Cost], allowed: list[list[bool]] | None, dataset, log) -> SearchResult:
    if not options.searched:
        i, depth = options.fixed_architecture()
        model = ElasticSASRec(derived_config(train.model, space, i, depth), dataset.n_items, options.gates)
        found = {**space.describe(i, depth), "gates": options.gates,
                 **measured(model, costs[(i, depth)], scoring_inputs(dataset, train))}
        return finish(run, train, SearchResult(algorithm=NAME, architecture=found, fitness=0.0, metric=train.metric,
                                               run_dir=str(run.root)))
    supernet_dir = run.path(SUPERNET)
    if not (supernet_dir / RESULT).is_file():
        log(f"EASRec search: {options.search_epochs} epochs of the supernet (widths "
            f"{', '.join(map(str, space.widths))}, {space.layers} layers)")
        Trainer(supernet_config(train, options, run), dataset, resume=(supernet_dir / CHECKPOINT_DIR / LAST).is_file(),
                log=log, callbacks=SearchCallbacks(options, space, costs, allowed, train.seed)).fit(test=False)
    started = time.perf_counter()
    state = load_checkpoint(supernet_dir / CHECKPOINT_DIR / BEST)["model"]  # selected on validation
    selected = supernet(train.model, dataset.n_items, space, options.gates, allowed)
    selected.load_state_dict(state)
    i, depth = selected.chosen()
    candidates = score_candidates(state, train, options, space, costs, dataset, resolve_device(train.device))
    chosen = candidates[space.architectures.index((i, depth))]
    found = {**space.describe(i, depth), "gates": options.gates,
             **{key: chosen[key] for key in ("multiply_adds", "params", "scoring_ms")},
             "probabilities": {"width": torch.softmax(selected.alpha.detach(), dim=0).tolist(),
                               "depth": torch.softmax(selected.beta.detach(), dim=0).tolist()},
             "candidates": candidates}
    plot_architecture_history(run, supernet_dir / METRICS, space)
    plot_pareto(run, candidates, found["architecture"], train.metric)
    supernet_s = json.loads((supernet_dir / RESULT).read_text())["elapsed_s"]
    checkpoint = supernet_dir / CHECKPOINT_DIR / BEST
    return finish(run, train, SearchResult(
        algorithm=NAME, architecture=found, fitness=chosen["valid"][train.metric], metric=train.metric,
        evaluations=len(candidates), supernet_checkpoint=str(checkpoint.relative_to(run.root)),
        search_s=round(supernet_s + time.perf_counter() - started, 3), run_dir=str(run.root)))


def finish(run: SearchRun, train: TrainConfig, result: SearchResult) -> SearchResult:
    run.write_result(result)
    derive(result, train).save(run.path(SPEC))
    return result


def derive(result: SearchResult, train: TrainConfig) -> ModelSpec:
    """The chosen width, inner size and depth as a model of their own (nothing sliced)."""
    found = result.architecture
    model = dataclasses.replace(train.model, hidden_size=found["width"], inner_size=found["inner"],
                                num_layers=found["depth"])
    return ModelSpec(model, algorithm=NAME, searched={key: found[key] for key in ("keep", "width", "inner", "depth",
                                                                                     "gates")})


# -- retraining ------------------------------------------------------------------------------------
class RetrainCallbacks(TrainerCallbacks):
    """The derived model, from its slice of the supernet's selected weights or from scratch."""

    def __init__(self, spec: ModelSpec, inherited: dict[str, torch.Tensor] | None):
        self.spec, self.inherited = spec, inherited

    def build_model(self, config, n_items: int) -> ElasticSASRec:
        model = build_derived(self.spec, n_items)
        if self.inherited is not None:
            model.load_state_dict(inherited_weights(self.inherited, model))
        return model


def load_config(run: SearchRun) -> tuple[TrainConfig, EASRecConfig]:
    _, train, options = load_search_config(run, NAME)
    return train, parse_options(EASRecConfig, options, where=f"{run.path('config.yaml')} search")


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False,
            fast_dev_run: bool = False) -> dict[str, Any]:
    """Trains the model of RUN_DIR/spec.json (resuming an interrupted retraining, or moving an
    earlier one aside with ``overwrite``), selected on validation, tested once."""
    run = SearchRun(run_dir)

    def callbacks(train: TrainConfig) -> RetrainCallbacks:
        result = run.read_result()  # a clear error if the search has not finished
        _, options = load_config(run)
        inherit = options.searched and options.retrain == "inherit"
        state = load_checkpoint(run.root / result.supernet_checkpoint)["model"] if inherit else None
        return RetrainCallbacks(ModelSpec.load(run.path(SPEC)), state)

    trained = retrain_search(run.root, dataset, NAME, callbacks, log=log or default_log, started_at=started_at,
                             overwrite=overwrite, fast_dev_run=fast_dev_run)
    return {**trained, "algorithm": NAME, "architecture": ModelSpec.load(run.path(SPEC)).searched}
