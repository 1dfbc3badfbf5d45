"""AdaRec's search and retraining.

    search(train, options, dataset) -> SearchResult   train (or check) the teacher, then the
                                                       supernet: weights stepped on training
                                                       batches with CE + distillation, the shared
                                                       architecture on held-out batches with the
                                                       cost loss added
    derive(result, train) -> ModelSpec                 the student with the argmax op per edge
    retrain(run_dir) -> dict                           that student from scratch with the teacher
                                                       (or fine-tuned from the supernet), selected
                                                       on validation, tested once

Everything lands in a :class:`~seqrec_fast.nas.search_run.SearchRun` directory (RUN_DIR/teacher
is the teacher's training run) and resumes after a kill with the same result: the teacher and the
supernet through the trainer's exact resume; the Gumbel samples are functions of (seed, epoch,
batch) and (seed, architecture step), so they need no state of their own."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from ...models import ModelConfig, ModelSpec
from ...models.registry import resolve_defaults
from ...nas.relaxations import ARCHITECTURE_STREAM, WEIGHT_STREAM, keyed_generator
from ...nas.search_loop import default_log, load_search_config, open_search, retrain_search
from ...nas.search_run import SPEC, SUPERNET, SearchResult, SearchRun
from ...options import parse_options
from ...train.callbacks import ArchitectureStep, TrainerCallbacks
from ...train.checkpoint import load_checkpoint
from ...train.config import TrainConfig, from_resolved_yaml
from ...train.distributed import resolve_device
from ...train.evaluation import evaluate_split, load_trained_model
from ...train.run_dir import CONFIG, check_dataset
from ...train.trainer import CHECKPOINT_DIR, LAST, RESULT, Trainer
from .cell_ops import normalised_op_costs
from .distillation import Distillation
from .options import TEACHERS, AdaRecConfig, parse_architecture
from .plots import plot_architecture_history, plot_cell, plot_flow
from .space import OPS
from .student import AdaRecStudent
from .teacher import TEACHER_DIR, TEACHER_SIZES, Teacher, check_teacher_model, teacher_train_config

NAME = "adarec"
WINDOW = "sliding"  # the distillation reads every position, so every window position is a target


# -- the teacher ---------------------------------------------------------------------------------
def check_options(options: AdaRecConfig, dataset) -> AdaRecConfig:
    """Refuses an unknown teacher (naming what is valid) and records a teacher run by its absolute
    path, so that the search reads the same teacher from any working directory."""
    if options.teacher in TEACHERS:
        return options
    path = Path(options.teacher).expanduser()
    if not path.is_dir():
        raise ValueError(f"unknown teacher {options.teacher!r}: expected {' or '.join(TEACHERS)}, or the directory of "
                         "a trained run of one of them")
    teacher_run(path, dataset)
    return dataclasses.replace(options, teacher=os.path.abspath(path))


def teacher_run(path: Path, dataset) -> Path:
    """The training directory of an existing teacher run, checked against the dataset."""
    from ...serving.trained_run import locate

    located = locate(path)
    if located.spec_path is not None:
        raise ValueError(f"{path} holds a search; the teacher is a trained {' or '.join(TEACHERS)} run "
                         "(the --out of seqrec-fast train)")
    config = from_resolved_yaml(located.training_dir / CONFIG)
    check_teacher_model(config.model, str(path))
    check_dataset(located.training_dir, config.data, dataset)
    checkpoint = load_checkpoint(located.checkpoint)
    if int(checkpoint["n_items"]) != dataset.n_items:
        raise ValueError(f"{located.checkpoint} was trained on {checkpoint['n_items']} items, but the dataset has "
                         f"{dataset.n_items}: the teacher must come from the same dataset")
    return located.training_dir


def teacher_model(options: AdaRecConfig) -> ModelConfig:
    """The teacher's architecture, before it is trained or loaded."""
    if options.teacher in TEACHERS:
        return ModelConfig(name=options.teacher, **TEACHER_SIZES[options.teacher])
    from ...serving.trained_run import locate

    return from_resolved_yaml(locate(options.teacher).training_dir / CONFIG).model


def teacher_dir(run: SearchRun, options: AdaRecConfig) -> Path:
    return run.path(TEACHER_DIR) if options.teacher in TEACHERS else Path(options.teacher)


def train_teacher(run: SearchRun, train: TrainConfig, options: AdaRecConfig, dataset, log) -> Path:
    """The teacher's training directory, after training it (or finishing an interrupted run)."""
    out = teacher_dir(run, options)
    if options.teacher in TEACHERS and not (out / RESULT).is_file():
        config = teacher_train_config(train, options.teacher, out, options.teacher_epochs)
        log(f"AdaRec teacher: {options.teacher} (d {config.model.hidden_size}) into {out}")
        resume = (out / CHECKPOINT_DIR / LAST).is_file()
        Trainer(config, dataset, resume=resume, log=log).fit()
    return out


def load_teacher(training_dir: Path, dataset, device) -> tuple[Teacher, float]:
    """The frozen teacher, and the seconds its training took."""
    from ...serving.trained_run import BEST

    config = from_resolved_yaml(training_dir / CONFIG)
    model = load_trained_model(config.model, training_dir / CHECKPOINT_DIR / BEST, dataset.n_items)
    elapsed = json.loads((training_dir / RESULT).read_text()).get("elapsed_s", 0.0)
    return Teacher(model).to(device), float(elapsed)


# -- the student ---------------------------------------------------------------------------------
def student_config(train: TrainConfig, options: AdaRecConfig, teacher: ModelConfig) -> ModelConfig:
    width = teacher.hidden_size // options.width_ratio
    if width < 1:
        raise ValueError(f"width_ratio {options.width_ratio} leaves no width of the teacher's {teacher.hidden_size}")
    dropout = train.model.dropout if train.model.dropout >= 0 else AdaRecStudent.defaults["dropout"]
    # The fields the student does not read keep the teacher backbone's defaults, so that the
    # configuration is complete wherever it is stored.
    return resolve_defaults(ModelConfig(name=teacher.name, hidden_size=width, num_layers=options.cells,
                                        max_len=train.model.max_len, dropout=dropout, attn_dropout=0.0))


def build_student(spec: ModelSpec, n_items: int) -> AdaRecStudent:
    cell = spec.searched.get("cell")
    if not isinstance(cell, list):
        raise ValueError("AdaRec model spec: 'searched.cell' must list one op per edge")
    return AdaRecStudent(spec.model, n_items, parse_architecture(",".join(cell)))


class SearchCallbacks(TrainerCallbacks):
    """The supernet's training: weights on training batches under a sampled architecture, the
    architecture on held-out batches under every op."""

    def __init__(self, options: AdaRecConfig, student: ModelConfig, teacher: Teacher, seed: int):
        self.options, self.student, self.teacher, self.seed = options, student, teacher, seed
        self.model: AdaRecStudent | None = None
        self.distillation: Distillation | None = None
        self.epoch = 0
        costs = normalised_op_costs(student.hidden_size, student.max_len)
        self.op_costs = torch.tensor(costs)

    def build_model(self, config, n_items: int) -> AdaRecStudent:
        return AdaRecStudent(self.student, n_items)

    def auxiliary(self, model: AdaRecStudent) -> Distillation | None:
        self.model = model
        self.distillation = distillation(model, self.teacher, self.options)
        return self.distillation

    def loss_weight(self) -> float:
        return ce_weight(self.options)

    def before_batch(self, epoch: int, index: int) -> None:
        self.epoch = epoch
        self.model.mixed = False
        with torch.no_grad():
            self.model.sample(self.options.temperature_at(epoch),
                              keyed_generator(self.model.alpha.device, self.seed, WEIGHT_STREAM, epoch, index))

    def architecture(self, model: AdaRecStudent) -> ArchitectureStep:
        options = self.options
        self.op_costs = self.op_costs.to(model.alpha)
        return ArchitectureStep(parameters=[model.alpha], every=options.architecture_every,
                                loss=self.architecture_loss, lr=options.architecture_lr_for,
                                weight_decay=options.architecture_weight_decay,
                                source=options.architecture_source, held_out_users=options.held_out_users)

    def expected_cost(self) -> torch.Tensor:
        """Eq. 14 in expectation: the normalised cost of each edge's ops under softmax(alpha)."""
        return (torch.softmax(self.model.alpha, dim=-1) * self.op_costs).sum()

    def architecture_loss(self, train_step, inputs, targets, negatives, index: int) -> torch.Tensor:
        model = self.model
        model.sample(self.options.temperature_at(self.epoch),
                     keyed_generator(model.alpha.device, self.seed, ARCHITECTURE_STREAM, index))
        model.mixed = True
        try:
            return train_step(inputs, targets, negatives) + self.options.beta * self.expected_cost()
        finally:
            model.mixed = False

    def after_epoch(self, epoch: int) -> dict[str, Any]:
        record = {"temperature": self.options.temperature_at(epoch - 1),
                  "architecture": torch.softmax(self.model.alpha.detach(), dim=-1).cpu().tolist(),
                  "expected_cost": float(self.expected_cost().detach())}
        if self.distillation is not None:
            record["distillation"] = {name: float(value) for name, value in self.distillation.last.items()}
        return record


def distillation(model: AdaRecStudent, teacher: Teacher, options: AdaRecConfig) -> Distillation | None:
    if options.gamma == 0 or not (options.emb_loss or options.hidden_loss or options.pred_loss):
        return None
    return Distillation(model, teacher, options).to(next(model.parameters()).device)


def ce_weight(options: AdaRecConfig) -> float:
    return (1.0 - options.gamma) if options.ce_loss else 0.0


# -- the search ------------------------------------------------------------------------------------
def supernet_config(train: TrainConfig, options: AdaRecConfig, run: SearchRun) -> TrainConfig:
    config = copy.deepcopy(train)
    config.out = str(run.path(SUPERNET))
    config.epochs = options.search_epochs
    config.ema_decay = 0.0
    return config


def search(train: TrainConfig, options: AdaRecConfig, dataset, resume: bool = False, overwrite: bool = False,
           log=None) -> SearchResult:
    """Runs (or resumes) the whole search into ``train.out``, holding its run directory's lock."""
    log = log or default_log
    options = check_options(options, dataset)
    # The run's model is the student, so that its configuration, retraining and results name it.
    train = dataclasses.replace(train, model=student_config(train, options, teacher_model(options)),
                                window=train.window or WINDOW)
    with open_search(NAME, train, options.to_dict(), dataset, resume=resume, overwrite=overwrite, log=log) as run:
        return _search(run, train, options, dataset, log)


def _search(run: SearchRun, train: TrainConfig, options: AdaRecConfig, dataset, log) -> SearchResult:
    device = resolve_device(train.device)
    teacher, teacher_s = load_teacher(train_teacher(run, train, options, dataset, log), dataset, device)
    student = train.model
    probabilities: list[list[float]] = []
    fitness, search_s, checkpoint_name = 0.0, 0.0, ""
    if options.searched:
        config = supernet_config(train, options, run)
        checkpoint = run.path(SUPERNET) / CHECKPOINT_DIR / LAST
        done = load_checkpoint(checkpoint)["progress"]["epoch"] if checkpoint.is_file() else 0
        if done < options.search_epochs:
            log(f"AdaRec search: {options.search_epochs} epochs of the supernet (width {student.hidden_size}, "
                f"{options.cells} cells)")
            Trainer(config, dataset, resume=checkpoint.is_file(), log=log,
                    callbacks=SearchCallbacks(options, student, teacher, train.seed)).fit(select=False)
        state = load_checkpoint(checkpoint)
        supernet = AdaRecStudent(student, dataset.n_items).to(device)
        supernet.load_state_dict(state["model"])
        supernet.eval()
        cell = supernet.derived_cell()
        probabilities = torch.softmax(supernet.alpha.detach(), dim=-1).cpu().tolist()
        # The derived cell with the supernet's weights, on validation: what the search found.
        fitness = evaluate_split(supernet, dataset, train, "valid", device)[train.metric]
        search_s = state["progress"]["elapsed_s"]
        checkpoint_name = str(checkpoint.relative_to(run.root))
        plot_architecture_history(run, run.path(SUPERNET) / "metrics.jsonl")
        if state.get("auxiliary") is not None:
            plot_flow(run, state["auxiliary"])
    else:
        cell = parse_architecture(options.architecture)
    plot_cell(run, cell)
    result = SearchResult(
        algorithm=NAME,
        architecture={"cell": list(cell), "teacher": teacher.model.config.name, "width": student.hidden_size,
                      "cells": options.cells, "probabilities": probabilities},
        fitness=fitness, metric=train.metric, evaluations=1 if options.searched else 0,
        supernet_checkpoint=checkpoint_name, warmup_s=round(teacher_s, 3), search_s=round(search_s, 3),
        run_dir=str(run.root))
    run.write_result(result)
    derive(result, train).save(run.path(SPEC))
    return result


def derive(result: SearchResult, train: TrainConfig) -> ModelSpec:
    """The student: the argmax op of every edge in every cell, at the width the search used."""
    found = result.architecture
    cell = parse_architecture(",".join(found["cell"]))
    return ModelSpec(train.model, algorithm=NAME, searched={"cell": list(cell), "teacher": found["teacher"]})


# -- retraining ------------------------------------------------------------------------------------
class RetrainCallbacks(TrainerCallbacks):
    """The derived student: from scratch with the teacher (kd), or from the supernet's weights of
    its chosen ops with cross-entropy alone (finetune)."""

    def __init__(self, spec: ModelSpec, options: AdaRecConfig, teacher: Teacher | None,
                 inherited: dict[str, torch.Tensor] | None):
        self.spec, self.options, self.teacher, self.inherited = spec, options, teacher, inherited

    def build_model(self, config, n_items: int) -> AdaRecStudent:
        model = build_student(self.spec, n_items)
        if self.inherited is not None:
            model.load_state_dict(inherited_weights(self.inherited, model.cell))
        return model

    def auxiliary(self, model: AdaRecStudent) -> Distillation | None:
        return None if self.teacher is None else distillation(model, self.teacher, self.options)

    def loss_weight(self) -> float:
        return 1.0 if self.teacher is None else ce_weight(self.options)


def inherited_weights(supernet: dict[str, torch.Tensor], cell: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The supernet's weights of the ops a cell chose, named as the derived student names them."""
    state = {}
    for key, value in supernet.items():
        parts = key.split(".")
        if parts[0] == "alpha":
            continue
        if parts[0] == "cells" and parts[2] == "edges" and parts[4] == "ops":
            edge, op = int(parts[3]), int(parts[5])
            if OPS[op] != cell[edge]:
                continue
            parts[5] = "0"
        state[".".join(parts)] = value
    return state


def load_config(run: SearchRun) -> tuple[TrainConfig, AdaRecConfig]:
    _, train, options = load_search_config(run, NAME)
    return train, parse_options(AdaRecConfig, options, where=f"{run.path('config.yaml')} search")


def retrain(run_dir, dataset, log=None, started_at: float | None = None, overwrite: bool = False,
            fast_dev_run: bool = False) -> dict[str, Any]:
    """Trains the student of RUN_DIR/spec.json (resuming an interrupted retraining, or moving an
    earlier one aside with ``overwrite``), selected on validation, tested once."""
    run = SearchRun(run_dir)
    chosen: list[ModelSpec] = []

    def callbacks(train: TrainConfig) -> RetrainCallbacks:
        result = run.read_result()  # a clear error if the search has not finished
        spec = ModelSpec.load(run.path(SPEC))
        chosen.append(spec)
        _, options = load_config(run)
        device = resolve_device(train.device)
        if options.retrain == "finetune":
            if not result.supernet_checkpoint:
                raise ValueError(f"{run.root}: a fixed architecture has no supernet to fine-tune; retrain it with kd")
            return RetrainCallbacks(spec, options, None, load_checkpoint(run.root / result.supernet_checkpoint)["model"])
        teacher, _ = load_teacher(teacher_dir(run, options), dataset, device)
        return RetrainCallbacks(spec, options, teacher, None)

    result = retrain_search(run.root, dataset, NAME, callbacks, log=log or default_log, started_at=started_at,
                            overwrite=overwrite, fast_dev_run=fast_dev_run)
    return {**result, "algorithm": NAME, "cell": chosen[0].searched["cell"]}
