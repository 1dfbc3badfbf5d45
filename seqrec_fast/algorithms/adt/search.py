"""ADT's search and retraining.

    search(train, options, dataset) -> SearchResult   warm-up an M x M grid supernet (a random
                                                       candidate per epoch or batch), then
                                                       differential evolution over candidates,
                                                       each scored on the validation split
    derive(result, train) -> ModelSpec                 the backbone with the chosen per-layer
                                                       loss weights
    retrain(run_dir) -> dict                           the backbone from scratch with them

Everything lands in a :class:`~seqrec_fast.nas.search_run.SearchRun` directory and resumes from
it after a kill with the same result for the same seed: the warm-up through the trainer's exact
resume, the evolution from its state file (saved after every evaluation); candidates drawn in
the warm-up are a function of (seed, epoch[, batch]), so they need no state of their own."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from ...models import ModelSpec
from ...nas.evolution import DifferentialEvolution
from ...nas.search_loop import default_log, evolve, load_search_config, open_search, retrain_search
from ...nas.search_run import CONFIG, SPEC, SUPERNET, SearchResult, SearchRun
from ...options import parse_options
from ...train.checkpoint import load_checkpoint
from ...train.config import TrainConfig
from ...train.distributed import resolve_device
from ...train.evaluation import evaluate_split
from ...train.trainer import CHECKPOINT_DIR, LAST, Trainer
from .grid_supernet import set_coordinates
from .options import BACKBONES, WINDOW, ADTConfig
from .space import ADTSpace, LossWeights
from .weighted_losses import RetrainCallbacks, WarmupCallbacks, build_supernet

NAME = "adt"


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


def search(train: TrainConfig, options: ADTConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock;
    ``overwrite`` moves an earlier directory there aside first."""
    log = log or default_log
    check_backbone(train)
    if not train.window:  # a TrainConfig built in code, not through build_config
        train = dataclasses.replace(train, window=WINDOW)
    with open_search(NAME, train, options.to_dict(), dataset, resume=resume, overwrite=overwrite, log=log) as run:
        return _search(run, train, options, dataset, log)


def _search(run: SearchRun, train: TrainConfig, options: ADTConfig, dataset, log) -> SearchResult:
    space = options.space(train.model.num_layers)
    warm = supernet_config(train, options, run)
    checkpoint = run.path(SUPERNET) / CHECKPOINT_DIR / LAST
    if _warmup_epochs_done(checkpoint) < options.warmup_epochs:
        log(f"ADT warm-up: {options.warmup_epochs} epochs of the {space.grid_size}x{space.grid_size} grid supernet")
        trainer = Trainer(warm, dataset, resume=checkpoint.is_file(), log=log,
                          callbacks=WarmupCallbacks(space, train.seed, options.candidate_every))
        trainer.fit(select=False)
    warmed = load_checkpoint(checkpoint)
    warmup_s = warmed["progress"]["elapsed_s"]  # summed over resumed runs

    device = resolve_device(train.device)
    supernet = build_supernet(warm, dataset.n_items, space.grid_size).to(device)
    supernet.load_state_dict(warmed["model"])
    supernet.eval()

    def fitness(candidate: Sequence[float]) -> float:
        set_coordinates(supernet, space.coordinates(candidate))
        return evaluate_split(supernet, dataset, train, "valid", device)[train.metric]

    evolution, search_s = evolve(
        run, lambda: DifferentialEvolution(space.dims, options.evolution(), seed=train.seed), fitness,
        lambda entry: {**entry, "weights": space.weights(entry["candidate"]).to_dict()},
        metric=train.metric, progress=train.progress, label="ADT search", log=log)

    best = evolution.best
    weights = space.weights(best.candidate)
    result = SearchResult(
        algorithm=NAME, architecture=weights.to_dict(), fitness=best.fitness, metric=train.metric,
        candidate=list(best.candidate), evaluations=len(evolution.history),
        supernet_checkpoint=str(checkpoint.relative_to(run.root)),
        warmup_s=round(warmup_s, 3), search_s=round(search_s, 3), run_dir=str(run.root))
    run.write_result(result)
    derive(result, train).save(run.path(SPEC))
    run.plot_search_curve(evolution.history, train.metric)
    run.plot_layer_weights(weights.to_dict(), "ADT loss weights per layer")
    return result


def _warmup_epochs_done(checkpoint) -> int:
    return load_checkpoint(checkpoint)["progress"]["epoch"] if checkpoint.is_file() else 0


def loss_weights(result: SearchResult, num_layers: int) -> LossWeights:
    return LossWeights.from_dict(result.architecture, num_layers, where=f"{result.run_dir} result")


def derive(result: SearchResult, train: TrainConfig) -> ModelSpec:
    """The backbone as configured, with the per-layer loss weights its retraining adds."""
    weights = loss_weights(result, train.model.num_layers)
    return ModelSpec(train.model, algorithm=NAME, searched={"loss_weights": weights.to_dict()})


def load_config(run: SearchRun) -> tuple[TrainConfig, ADTConfig]:
    _, train, options = load_search_config(run, NAME)
    return train, parse_options(ADTConfig, options, where=f"{run.path(CONFIG)} search")


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False,
            fast_dev_run: bool = False) -> dict[str, Any]:
    """Trains the model of RUN_DIR/spec.json from scratch with its searched loss weights
    (resuming an interrupted retraining, or moving an earlier one aside with ``overwrite``), with
    model selection on validation and one test evaluation at the end. Holds the search
    directory's lock."""
    run = SearchRun(run_dir)
    chosen: list[LossWeights] = []

    def callbacks(train: TrainConfig) -> RetrainCallbacks:
        run.read_result()  # a clear error if the search has not finished
        spec = ModelSpec.load(run.path(SPEC))
        weights = LossWeights.from_dict(spec.searched.get("loss_weights"), spec.model.num_layers,
                                        where=f"{run.path(SPEC)} searched.loss_weights")
        chosen.append(weights)
        return RetrainCallbacks(spec, weights)

    result = retrain_search(run.root, dataset, NAME, callbacks, log=log or default_log,
                            started_at=started_at, overwrite=overwrite, fast_dev_run=fast_dev_run)
    return {**result, "algorithm": NAME, "weights": chosen[0].to_dict()}
