"""ADT, the Adaptive Disentangled Transformer (KDD'23): search per-layer weights of two auxiliary
losses (head independence, input reconstruction), then retrain the backbone with them.

    search(train, options, dataset) -> SearchResult   warm-up an M x M grid supernet (a random
                                                       candidate per epoch or batch), then
                                                       differential evolution over candidates,
                                                       each scored on the validation split
    derive(result) -> LossWeights                      the chosen per-layer weights
    retrain(run_dir) -> dict                           the backbone from scratch with them

Everything lands in a :class:`~seqrec_fast.nas.search_run.SearchRun` directory and resumes from
it after a kill with the same result for the same seed: the warm-up through the trainer's exact
resume, the evolution from its state file (saved after every evaluation); candidates drawn in
the warm-up are a function of (seed, epoch[, batch]), so they need no state of their own."""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..models import SequentialRecommender, build_model
from ..nas.evolution import DifferentialEvolution
from ..nas.grid_supernet import set_coordinates, to_grid_supernet
from ..nas.search_run import RETRAIN, SUPERNET, SearchResult, SearchRun
from ..train.checkpoint import load_checkpoint
from ..train.config import TrainConfig, set_option, to_yaml, validate
from ..train.run_dir import DISPLAY_ONLY, check_dataset, claim, move_aside, pin_dataset
from ..train.report import plot_training_curve
from ..train.trainer import CHECKPOINT_DIR, LAST, METRICS, Trainer, evaluate_split, resolve_device
from .adt_objectives import DisentanglementObjectives
from .adt_options import ADTConfig
from .adt_space import ADTSpace, LossWeights

ALGORITHM = "adt"
BACKBONES = ("sasrec", "bert4rec", "stosa")  # Transformer backbones with attention heads
# Training windows when the options name none: the objectives read every position, so strided
# windows could not prune the final block and would cost a full forward per window.
WINDOW = "sliding"


# ----------------------------------------------------------------------------- auxiliary losses
class WeightedObjectives(nn.Module):
    """Eq. 13's auxiliary part, sum_l lambda_ind^l L_ind^l + lambda_rec^l L_rec^l, as the
    trainer's auxiliary loss."""

    def __init__(self, model: SequentialRecommender, weights: LossWeights):
        super().__init__()
        self.objectives = DisentanglementObjectives(model)
        layers = self.objectives.num_layers
        if len(weights.reconstruction) != layers:
            raise ValueError(f"{layers} layers but {len(weights.reconstruction)} weights per objective")
        self.register_buffer("reconstruction", torch.zeros(layers), persistent=False)
        self.register_buffer("independence", torch.zeros(layers), persistent=False)
        self.set_weights(weights)

    def set_weights(self, weights: LossWeights) -> None:
        self.reconstruction.copy_(torch.tensor(weights.reconstruction))
        self.independence.copy_(torch.tensor(weights.independence))

    def forward(self, inputs: Tensor) -> Tensor:
        independence, reconstruction = self.objectives(inputs)
        return (self.independence * independence).sum() + (self.reconstruction * reconstruction).sum()


class RandomCandidates(WeightedObjectives):
    """The warm-up: before each batch, the candidate of (seed, epoch) -- or (seed, epoch, batch)
    -- sets the supernet's coordinates and the loss weights (paper, Sec. 3.3)."""

    def __init__(self, model: SequentialRecommender, space: ADTSpace, seed: int, every: str):
        super().__init__(model, space.weights([0.0] * space.dims))
        self._apply_coordinates: Callable[[Sequence], None] = lambda pairs: set_coordinates(model, pairs)
        self.space, self.seed, self.every = space, seed, every

    def candidate(self, epoch: int, batch: int) -> list[float]:
        key = [self.seed, epoch] + ([batch] if self.every == "batch" else [])
        return np.random.default_rng(key).random(self.space.dims).tolist()

    def start_batch(self, epoch: int, batch: int) -> None:
        candidate = self.candidate(epoch, batch)
        self._apply_coordinates(self.space.coordinates(candidate))
        self.set_weights(self.space.weights(candidate))


# ---------------------------------------------------------------------------------- the search
def check_backbone(train: TrainConfig) -> None:
    name = train.model.name
    if name not in BACKBONES:
        raise ValueError(f"ADT needs a Transformer backbone with attention heads ({', '.join(BACKBONES)}); "
                         f"{name} has none")


def supernet_config(train: TrainConfig, options: ADTConfig, run: SearchRun) -> TrainConfig:
    config = copy.deepcopy(train)
    config.out = str(run.path(SUPERNET))
    config.epochs = options.warmup_epochs
    config.ema_decay = 0.0  # the warm-up is never scored: the search reads its trained weights
    return config


def _build_supernet(config: TrainConfig, n_items: int, grid_size: int) -> SequentialRecommender:
    return to_grid_supernet(build_model(config.model, n_items), grid_size)


def search(train: TrainConfig, options: ADTConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock;
    ``overwrite`` moves an earlier directory there aside first."""
    log = log or (lambda message: print(message, file=sys.stderr))
    check_backbone(train)
    with claim(train.out, "search", resume=resume, overwrite=overwrite) as lock:
        if lock.moved_aside is not None:
            log(f"moved the earlier {train.out} aside to {lock.moved_aside}")
        return _search(train, options, dataset, resume, log)


def _without_display_options(settings: dict) -> dict:
    return {**settings, "train": {k: v for k, v in settings.get("train", {}).items() if k not in DISPLAY_ONLY}}


def _search(train: TrainConfig, options: ADTConfig, dataset, resume: bool, log) -> SearchResult:
    if not train.window:  # a TrainConfig built in code, not through build_config
        train = dataclasses.replace(train, window=WINDOW)
    space = options.space(train.model.num_layers)
    run = SearchRun(train.out)
    settings = {"algorithm": ALGORITHM, "search": options.to_dict(), "train": _yaml_dict(train)}
    if resume:
        saved = run.read_config()
        saved["train"].pop("out", None)  # written by earlier versions; the directory is where it is now
        if _without_display_options(saved) != _without_display_options(settings):
            raise ValueError(f"{run.root} holds a search with another configuration; resume it with its own "
                             f"(seqrec-fast search {ALGORITHM} --out {run.root} --resume) or choose another --out")
        check_dataset(run.root, train.data, dataset)
    else:
        run.write_config(settings)
        pin_dataset(run.root, train.data, dataset)

    warm = supernet_config(train, options, run)
    checkpoint = run.path(SUPERNET) / CHECKPOINT_DIR / LAST
    if _warmup_epochs_done(checkpoint) < options.warmup_epochs:
        log(f"ADT warm-up: {options.warmup_epochs} epochs of the {space.grid_size}x{space.grid_size} grid supernet")
        trainer = Trainer(
            warm, dataset, resume=checkpoint.is_file(), log=log,
            make_model=lambda: _build_supernet(warm, dataset.n_items, space.grid_size),
            make_auxiliary=lambda model: RandomCandidates(model, space, train.seed, options.candidate_every))
        trainer.fit(select=False)
    warmed = load_checkpoint(checkpoint)
    warmup_s = warmed["progress"]["elapsed_s"]  # summed over resumed runs

    device = resolve_device(train.device)
    supernet = _build_supernet(warm, dataset.n_items, space.grid_size).to(device)
    supernet.load_state_dict(warmed["model"])
    supernet.eval()

    def fitness(candidate: Sequence[float]) -> float:
        set_coordinates(supernet, space.coordinates(candidate))
        return evaluate_split(supernet, dataset, train, "valid", device)[train.metric]

    state = run.load_state()
    evolution = (DifferentialEvolution.from_state(state) if state
                 else DifferentialEvolution(space.dims, options.evolution(), seed=train.seed))
    evolution_config = options.evolution()
    total = evolution_config.population * (evolution_config.rounds + 1)
    bar = tqdm(total=total, initial=min(len(evolution.history), total), desc="ADT search", file=sys.stderr,
               disable=not train.progress)
    search_started = time.perf_counter()

    previous_s = state.get("search_s", 0.0) if state else 0.0

    def save(state: dict) -> None:
        state = {**state, "search_s": previous_s + time.perf_counter() - search_started}
        history = [_described(h, space) for h in state["history"]]
        best = max(history, key=lambda h: h["fitness"]) if history else None
        run.save_state(state, history, best)
        bar.n = min(len(history), total)
        if best is not None:
            bar.set_postfix({train.metric: f"{best['fitness']:.4f}"})
        bar.refresh()

    while not evolution.finished:
        scores = evolution.run_round(fitness, save)
        log(f"round {evolution.round - 1}: best {max(s.fitness for s in scores):.4f}, "
            f"mean {np.mean([s.fitness for s in scores]):.4f}, best so far {evolution.best.fitness:.4f}")
    bar.close()

    best = evolution.best
    weights = space.weights(best.candidate)
    result = SearchResult(
        algorithm=ALGORITHM, architecture=weights.to_dict(), fitness=best.fitness, metric=train.metric,
        candidate=list(best.candidate), evaluations=len(evolution.history),
        supernet_checkpoint=str(checkpoint.relative_to(run.root)),
        warmup_s=round(warmup_s, 3), search_s=round(previous_s + time.perf_counter() - search_started, 3),
        run_dir=str(run.root))
    run.write_result(result)
    run.plot_search_curve(evolution.history, train.metric)
    run.plot_layer_weights(weights.to_dict(), "ADT loss weights per layer")
    return result


def _described(entry: dict, space: ADTSpace) -> dict:
    return {**entry, "weights": space.weights(entry["candidate"]).to_dict()}


def _warmup_epochs_done(checkpoint) -> int:
    return load_checkpoint(checkpoint)["progress"]["epoch"] if checkpoint.is_file() else 0


def derive(result: SearchResult, num_layers: int) -> LossWeights:
    return LossWeights.from_dict(result.architecture, num_layers, where=f"{result.run_dir} result")


# --------------------------------------------------------------------------------- retraining
def load_search_config(run: SearchRun) -> tuple[TrainConfig, ADTConfig]:
    saved = run.read_config()
    if saved["algorithm"] != ALGORITHM:
        raise ValueError(f"{run.root} holds a {saved['algorithm']} search, not {ALGORITHM}")
    train = TrainConfig()
    for key, value in saved["train"].items():
        if key != "out":  # written by earlier versions; the run is where it is now
            set_option(train, key, value)
    train.out = str(run.root)
    validate(train)
    return train, ADTConfig.from_dict(saved["search"])


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Trains the backbone from scratch with the searched weights (resuming an interrupted
    retraining, or moving an earlier one aside with ``overwrite``), with model selection on
    validation and one test evaluation at the end. Holds the search directory's lock."""
    log = log or (lambda message: print(message, file=sys.stderr))
    run = SearchRun(run_dir)
    with claim(run.root, "search", resume=True):
        train, _ = load_search_config(run)
        weights = derive(run.read_result(), train.model.num_layers)
        check_dataset(run.root, train.data, dataset)
        retrain_dir = run.path(RETRAIN)
        if overwrite and retrain_dir.exists():
            log(f"moved the earlier {retrain_dir} aside to {move_aside(retrain_dir)}")
        config = copy.deepcopy(train)
        config.out = str(retrain_dir)
        resume = (retrain_dir / CHECKPOINT_DIR / LAST).is_file()
        trainer = Trainer(config, dataset, resume=resume, log=log, started_at=started_at,
                          make_auxiliary=lambda model: WeightedObjectives(model, weights))
        result = trainer.fit()
        plot_training_curve(retrain_dir / METRICS, retrain_dir / "training_curve.png", train.metric)
    return {**result, "algorithm": ALGORITHM, "weights": weights.to_dict()}


def _yaml_dict(train: TrainConfig) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(to_yaml(train))

