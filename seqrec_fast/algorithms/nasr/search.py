"""NASR's search and retraining.

    search(train, options, dataset) -> SearchResult   block by block: the block's supernet trained
                                                       self-supervised (earlier blocks on their
                                                       chosen paths), then every path of the
                                                       block scored on held-out users and the
                                                       lowest kept
    derive(result, train) -> ModelSpec                 the hybrid: one op per layer
    retrain(run_dir) -> dict                           that hybrid from scratch with full-softmax
                                                       CE, selected on validation, tested once

Everything lands in a :class:`~seqrec_fast.nas.search_run.SearchRun` directory:

    RUN_DIR/supernet/blockK/      block K's supernet training (a trainer run directory)
    RUN_DIR/selection/blockK.json the block's score table: every path, its loss, the one chosen

and resumes after a kill with the same result: a block's training through the trainer's exact
resume, the sampled paths as functions of (seed, block, epoch, batch), a finished block's table
read back."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...atomic_io import atomic_write_json
from ...models import ModelConfig, ModelSpec
from ...models.registry import resolve_defaults
from ...nas.search_loop import default_log, load_search_config, open_search, retrain_search
from ...nas.search_run import SPEC, SUPERNET, SearchResult, SearchRun
from ...options import parse_options
from ...train.callbacks import TrainerCallbacks
from ...train.checkpoint import load_checkpoint
from ...train.config import TrainConfig
from ...train.distributed import resolve_device
from ...train.trainer import CHECKPOINT_DIR, LAST, Trainer
from .network import NASRHybrid, NASRSupernet, op_indices, path_ops
from .options import NASRConfig
from .plots import plot_block_losses, plot_layers
from .selection import score_paths
from .siamese import BlockObjective
from .space import OPS, block_paths, parse_layers

NAME = "nasr"
SELECTION = "selection"
SUPERNET_WINDOW = "stride"  # many overlapping windows: the views differ, and ml-100k has few users
SELECTION_BATCH = 256  # held-out sequences scored per batch


def model_config(train: TrainConfig, options: NASRConfig) -> ModelConfig:
    """The width, length and dropout of the supernet and the hybrid; the ops come from the
    search. The other fields keep the configured backbone's defaults, so that the configuration
    is complete wherever it is stored."""
    dropout = train.model.dropout if train.model.dropout >= 0 else NASRHybrid.defaults["dropout"]
    attn_dropout = train.model.attn_dropout if train.model.attn_dropout >= 0 else NASRHybrid.defaults["attn_dropout"]
    return resolve_defaults(dataclasses.replace(train.model, num_layers=options.layers, dropout=dropout,
                                                attn_dropout=attn_dropout, residual="scaled", tie_weights=False))


# -- the block supernets ---------------------------------------------------------------------------
class BlockCallbacks(TrainerCallbacks):
    """Block ``block``'s supernet training: from the previous block's weights, earlier blocks on
    their chosen paths, ``options.paths`` paths of this block sampled per step."""

    def __init__(self, options: NASRConfig, block: int, chosen: list[tuple[int, ...]],
                 start: dict[str, torch.Tensor] | None, seed: int):
        self.options, self.block, self.chosen, self.start, self.seed = options, block, chosen, start, seed
        self.model: NASRSupernet | None = None
        self.block_objective: BlockObjective | None = None

    def build_model(self, config, n_items: int) -> NASRSupernet:
        model = NASRSupernet(config.model, n_items, self.options.layers)
        if self.start is not None:
            model.load_state_dict(self.start)
        if not (self.options.train_earlier or self.block == 0):
            earlier = tuple(op for path in self.chosen for op in path)
            for module in model.path_modules(earlier):
                module.requires_grad_(False)
        # Only this block's layers (and the earlier ones' chosen ops when they train) learn.
        per_block = self.options.layers_per_block
        for layer in range(per_block * (self.block + 1), self.options.layers):
            model.layers[layer].requires_grad_(False)
        self.model = model
        return model

    def objective(self, model: NASRSupernet) -> BlockObjective:
        options = self.options
        self.block_objective = block_objective(model, options, self.block, self.chosen)
        return self.block_objective

    def before_batch(self, epoch: int, index: int) -> None:
        self.block_objective.paths = sampled_paths(self.options, self.seed, self.block, epoch, index)


def block_objective(model: NASRSupernet, options: NASRConfig, block: int,
                    chosen: list[tuple[int, ...]]) -> BlockObjective:
    return BlockObjective(model, block, options.layers_per_block, chosen, options.projector, options.train_earlier,
                          options.augmentation_names, options.augment_fraction, options.paths,
                          options.held_out_users)


def sampled_paths(options: NASRConfig, seed: int, block: int, epoch: int, index: int) -> list[tuple[int, ...]]:
    """The step's paths, uniform over the block's ops, a function of the step alone."""
    rng = np.random.default_rng([seed, block, epoch, index])
    draws = rng.integers(0, len(OPS), size=(options.paths, options.layers_per_block))
    return [tuple(int(op) for op in row) for row in draws]


def block_dir(run: SearchRun, block: int) -> Path:
    return run.path(SUPERNET) / f"block{block}"


def block_config(train: TrainConfig, options: NASRConfig, run: SearchRun, block: int) -> TrainConfig:
    config = copy.deepcopy(train)
    config.out = str(block_dir(run, block))
    config.epochs = options.block_epochs
    config.window = SUPERNET_WINDOW
    config.batch_size = options.supernet_batch * config.loader_stride()
    config.optimizer, config.lr, config.weight_decay = "adamw", options.supernet_lr, options.supernet_weight_decay
    config.scheduler, config.warmup_steps, config.ema_decay = "constant", 0, 0.0
    return config


def train_block(run: SearchRun, train: TrainConfig, options: NASRConfig, dataset, block: int,
                chosen: list[tuple[int, ...]], log) -> dict[str, Any]:
    """Trains (or finishes) block ``block``'s supernet; its last checkpoint's state."""
    config = block_config(train, options, run, block)
    checkpoint = block_dir(run, block) / CHECKPOINT_DIR / LAST
    done = load_checkpoint(checkpoint)["progress"]["epoch"] if checkpoint.is_file() else 0
    if done < (1 if config.fast_dev_run else config.epochs):
        start = None
        if block > 0:
            start = load_checkpoint(block_dir(run, block - 1) / CHECKPOINT_DIR / LAST)["model"]
        log(f"NASR block {block + 1}/{options.blocks}: {options.block_epochs} epochs of the supernet, "
            f"{options.paths} paths per step")
        Trainer(config, dataset, resume=checkpoint.is_file(), log=log,
                callbacks=BlockCallbacks(options, block, chosen, start, train.seed)).fit(select=False)
    return load_checkpoint(checkpoint)


def selection_pairs(dataset, train: TrainConfig, options: NASRConfig, device) -> list[torch.Tensor]:
    """One fixed (target view, online view) pair per held-out user: [2, B, L] batches."""
    loader = dataset.train_loader(batch_size=SELECTION_BATCH * train.model.max_len, max_len=train.model.max_len,
                                  window="last", seed=train.seed, shuffle=False, held_out_users=options.held_out_users,
                                  held_out=True, augmentations=options.augmentation_names,
                                  augment_fraction=options.augment_fraction, n_views=2,
                                  num_threads=train.loader_threads)
    return [torch.from_numpy(np.asarray(batch["views"])).long().to(device) for batch in loader.epoch(0)]


def trained_block(train: TrainConfig, options: NASRConfig, dataset, block: int, chosen: list[tuple[int, ...]],
                  state: dict[str, Any], device) -> tuple[NASRSupernet, BlockObjective]:
    """Block ``block``'s supernet and objective as its training left them (``state``: its last
    checkpoint), with ``chosen`` as the earlier blocks' paths."""
    supernet = NASRSupernet(train.model, dataset.n_items, options.layers).to(device)
    supernet.load_state_dict(state["model"])
    objective = block_objective(supernet, options, block, chosen).to(device)
    objective.load_state_dict(state["objective"])
    return supernet, objective


def select_block(run: SearchRun, train: TrainConfig, options: NASRConfig, dataset, block: int,
                 chosen: list[tuple[int, ...]], state: dict[str, Any], log) -> dict[str, Any]:
    """Scores every path of the block and records the table; the finished table is read back."""
    table_path = run.path(SELECTION) / f"block{block}.json"
    if table_path.is_file():
        return json.loads(table_path.read_text())
    started = time.perf_counter()
    device = resolve_device(train.device)
    supernet, objective = trained_block(train, options, dataset, block, chosen, state, device)
    paths = block_paths(options.layers_per_block)
    losses = score_paths(supernet, objective, options.layers_per_block, selection_pairs(dataset, train, options, device))
    best = int(np.argmin(losses))
    table = {"block": block, "paths": [list(path_ops(p)) for p in paths], "loss": [float(v) for v in losses],
             "chosen": list(path_ops(paths[best])), "chosen_loss": float(losses[best]),
             "train_s": float(state["progress"]["elapsed_s"]), "selection_s": round(time.perf_counter() - started, 3)}
    atomic_write_json(table_path, table)
    log(f"NASR block {block + 1}: {', '.join(table['chosen'])} (selection loss {table['chosen_loss']:.4f}, "
        f"{len(paths)} paths scored in {table['selection_s']:.1f} s)")
    return table


def proxy_losses(run_dir, dataset, layers: list[str]) -> list[float]:
    """What a finished search's supernets say of any hybrid: each block's selection loss of the
    hybrid's path, scored as selection scores a block (every path of the block against their
    ensemble) with the hybrid's own earlier blocks in front of it."""
    run = SearchRun(run_dir)
    train, options = load_config(run)
    names = parse_layers(",".join(layers), options.layers)
    per_block = options.layers_per_block
    paths = [op_indices(names[k * per_block:(k + 1) * per_block]) for k in range(options.blocks)]
    device = resolve_device(train.device)
    pairs = selection_pairs(dataset, train, options, device)
    table_order = block_paths(per_block)
    losses = []
    for block in range(options.blocks):
        state = load_checkpoint(block_dir(run, block) / CHECKPOINT_DIR / LAST)
        supernet, objective = trained_block(train, options, dataset, block, paths[:block], state, device)
        losses.append(float(score_paths(supernet, objective, per_block, pairs)[table_order.index(paths[block])]))
    return losses


# -- the search ------------------------------------------------------------------------------------
def search(train: TrainConfig, options: NASRConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock."""
    log = log or default_log
    train = dataclasses.replace(train, model=model_config(train, options))
    with open_search(NAME, train, options.to_dict(), dataset, resume=resume, overwrite=overwrite, log=log) as run:
        return _search(run, train, options, dataset, log)


def _search(run: SearchRun, train: TrainConfig, options: NASRConfig, dataset, log) -> SearchResult:
    tables: list[dict[str, Any]] = []
    if options.searched:
        chosen: list[tuple[int, ...]] = []
        for block in range(options.blocks):
            state = train_block(run, train, options, dataset, block, chosen, log)
            table = select_block(run, train, options, dataset, block, chosen, state, log)
            tables.append(table)
            chosen.append(op_indices(table["chosen"]))
        layers = [name for table in tables for name in table["chosen"]]
        plot_block_losses(run, [block_dir(run, k) / "metrics.jsonl" for k in range(options.blocks)],
                          tables)
    else:
        layers = list(parse_layers(options.architecture, options.layers))
    plot_layers(run, layers, options.layers_per_block)
    train_s = sum(t["train_s"] for t in tables)
    selection_s = sum(t["selection_s"] for t in tables)
    result = SearchResult(
        algorithm=NAME,
        architecture={"layers": layers, "width": train.model.hidden_size,
                      "blocks": [{"chosen": t["chosen"], "loss": t["chosen_loss"], "train_s": t["train_s"],
                                  "selection_s": t["selection_s"]} for t in tables]},
        fitness=-float(sum(t["chosen_loss"] for t in tables)), metric="minus the summed selection loss",
        evaluations=sum(len(t["paths"]) for t in tables),
        supernet_checkpoint=str((block_dir(run, options.blocks - 1) / CHECKPOINT_DIR / LAST)
                                .relative_to(run.root)) if tables else "",
        warmup_s=round(train_s, 3), search_s=round(train_s + selection_s, 3), run_dir=str(run.root))
    run.write_result(result)
    derive(result, train).save(run.path(SPEC))
    return result


def derive(result: SearchResult, train: TrainConfig) -> ModelSpec:
    """The hybrid: the chosen op of every layer, at the width the search used."""
    layers = list(parse_layers(",".join(result.architecture["layers"]), len(result.architecture["layers"])))
    return ModelSpec(train.model, algorithm=NAME, searched={"layers": layers})


def build_hybrid(spec: ModelSpec, n_items: int) -> NASRHybrid:
    layers = spec.searched.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"a NASR model spec names its layers' ops under searched.layers, got {layers!r}")
    return NASRHybrid(spec.model, n_items, parse_layers(",".join(layers), len(layers)))


# -- retraining ------------------------------------------------------------------------------------
class RetrainCallbacks(TrainerCallbacks):
    """The derived hybrid, from scratch, with the configured (full-softmax CE) loss."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def build_model(self, config, n_items: int) -> NASRHybrid:
        return build_hybrid(self.spec, n_items)


def load_config(run: SearchRun) -> tuple[TrainConfig, NASRConfig]:
    _, train, options = load_search_config(run, NAME)
    return train, parse_options(NASRConfig, options, where=f"{run.path('config.yaml')} search")


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False,
            fast_dev_run: bool = False) -> dict[str, Any]:
    """Trains the hybrid of RUN_DIR/spec.json from scratch (resuming an interrupted retraining,
    or moving an earlier one aside with ``overwrite``), selected on validation, tested once."""
    run = SearchRun(run_dir)
    chosen: list[ModelSpec] = []

    def callbacks(train: TrainConfig) -> RetrainCallbacks:
        run.read_result()  # a clear error if the search has not finished
        spec = ModelSpec.load(run.path(SPEC))
        chosen.append(spec)
        return RetrainCallbacks(spec)

    result = retrain_search(run.root, dataset, NAME, callbacks, log=log or default_log, started_at=started_at,
                            overwrite=overwrite, fast_dev_run=fast_dev_run)
    return {**result, "algorithm": NAME, "layers": chosen[0].searched["layers"]}
