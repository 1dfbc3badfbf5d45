"""The training loop: epochs over the Rust loader's batches, validation every N epochs, early
stopping on a validation metric, the test split evaluated once with the best weights, and
checkpoints that resume a killed run exactly (model, optimizer, scheduler, RNG states and the
position in the data)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..models import SequentialRecommender, resolve_defaults
from . import distributed
from .callbacks import TrainerCallbacks
from .checkpoint import atomic_write_bytes, atomic_write_text, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainConfig, stored_dict, to_yaml
from .distributed import resolve_device
from .evaluation import evaluate_split, protocol_label, rank_split
from .metrics import summarise
from .losses import loss_spec, proposal_log_probabilities
from .run_dir import CHECKPOINTS as CHECKPOINT_DIR
from .run_dir import CONFIG, METRICS, check_dataset, pin_dataset
from .weight_average import WeightAverage

LAST = "last.pt"
BEST = "best.pt"
RESULT = "result.json"
# Where each test user's target ranked (the counts of train.metrics), so that two runs compare
# user by user (a paired bootstrap) without reading the test split again.
TEST_RANKS = "test_ranks.npz"
FAST_DEV_BATCHES = 2  # training batches of a fast dev run's one epoch


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


class TrainingStep(nn.Module):
    """Model + loss as one module, so that DDP sees every parameter the loss touches."""

    def __init__(self, model: SequentialRecommender, config: TrainConfig, log_q: Tensor | None,
                 auxiliary: nn.Module | None = None, loss_weight: float = 1.0, objective: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.auxiliary = auxiliary
        self.objective = objective
        self.loss_weight = loss_weight
        self.loss_fn = loss_spec(config.resolved_loss()).fn
        self.options = {"fused": config.fused_ce, "n_items": model.n_items, "gbce_t": config.gbce_t,
                        "pvn_weight": config.pvn_weight}
        self.register_buffer("log_q", log_q, persistent=False)
        # Strided windows put every target on a window's last `stride` positions: the model then
        # computes its final layer there only. Auxiliary losses read the whole forward, so not
        # with them.
        self.target_span = config.loader_stride() if auxiliary is None else None

    def forward(self, inputs: Tensor, targets: Tensor, negatives: Tensor | None, views: Tensor | None = None) -> Tensor:
        if self.objective is not None:
            return self.objective(views)
        span = self.target_span
        if span is not None and span < inputs.shape[1]:
            hidden = self.model.forward_last(inputs, span)
            targets = targets[:, -span:]
            negatives = None if negatives is None else negatives[:, -span:]
        else:
            hidden = self.model(inputs)
        has_target = targets > 0
        if negatives is not None:
            negatives = negatives[has_target]
        loss = self.loss_fn(self.model, hidden[has_target], targets[has_target], negatives,
                            log_q=self.log_q, **self.options)
        if self.loss_weight != 1.0:
            loss = self.loss_weight * loss
        if self.auxiliary is not None:  # reads what the model's forward just computed
            loss = loss + self.auxiliary(inputs, targets)
        return loss


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already trained
    step: int = 0  # optimizer steps in total
    best_value: float = -math.inf
    best_epoch: int = 0
    evals_without_improvement: int = 0
    elapsed_s: float = 0.0  # wall time since the job started, summed over resumes
    train_s: float = 0.0  # wall time inside training steps only
    samples: int = 0  # training targets seen (all ranks), batch_size's unit
    time_to_best_s: float = 0.0
    metrics_lines: int = 0  # lines of metrics.jsonl that belong to this state
    best_valid: dict[str, float] = field(default_factory=dict)
    stopped: str = ""


def make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    warmup = max(config.warmup_steps, 0)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if config.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.scheduler == "linear":
            return 1.0 - progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: nn.Module, config: TrainConfig, exclude: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The weights' optimizer, over every parameter of ``model`` but those in ``exclude`` (the
    architecture parameters, which their own optimizer steps)."""
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    excluded = {id(p) for p in exclude}
    parameters = [p for p in model.parameters() if id(p) not in excluded]
    return kind(parameters, lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains one model on one dataset into ``config.out``. Call :meth:`fit`."""

    def __init__(self, config: TrainConfig, dataset, resume: bool = False, log=None,
                 started_at: float | None = None, callbacks: TrainerCallbacks | None = None):
        """``started_at``: ``time.perf_counter()`` when the job began (dataset preparation
        included), so that the reported times count from the start of the job.

        Searches extend training through ``callbacks`` (:mod:`.callbacks`)."""
        started_at = time.perf_counter() if started_at is None else started_at
        # Resolved here, so that the run's config.yaml reads back whoever built the configuration.
        config = dataclasses.replace(config, model=resolve_defaults(config.model))
        self.config = config
        self.dataset = dataset
        self.run_dir = Path(config.out)
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.device = resolve_device(config.device)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        distributed.setup(self.device)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        if config.batch_size % self.world:
            raise ValueError(f"config key 'batch_size': {config.batch_size} is not divisible by the "
                             f"{self.world} processes")
        seed_everything(config.seed)
        self.callbacks = callbacks or TrainerCallbacks()
        model = self.callbacks.build_model(config, dataset.n_items)
        self.model = model.to(self.device)
        self.average = WeightAverage(self.model, config.ema_decay) if config.ema_decay > 0 else None
        torch.manual_seed(config.seed + self.rank)  # distinct dropout masks per rank
        negatives = config.resolved_negatives()
        log_q = None
        if config.resolved_loss() == "sampled_softmax":
            log_q = proposal_log_probabilities(config.negative_sampler, dataset.item_counts()).to(self.device)
        objective = self.callbacks.objective(self.model)
        auxiliary = self.callbacks.auxiliary(self.model)
        self.step_module = TrainingStep(self.model, config, log_q, auxiliary, self.callbacks.loss_weight(),
                                        objective).to(self.device)
        self.architecture = self.callbacks.architecture(self.model)
        if self.architecture is not None and self.world > 1:
            raise ValueError("architecture steps run in one process: a supernet search does not run under torchrun")
        self.train_module: nn.Module = self.step_module
        if self.world > 1:
            self.train_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        loader_options = dict(
            batch_size=max(1, config.batch_size // self.world), max_len=config.model.max_len, mode=self.model.objective,
            n_negatives=negatives, negative_sampler=config.negative_sampler, mask_prob=config.model.mask_prob,
            mask_last_ratio=config.model.mask_last_ratio if self.model.objective == "cloze" else 0.0,
            mask_span=config.model.mask_span if self.model.objective == "cloze" else "targets",
            window=config.resolved_window(), stride=config.loader_stride(), seed=config.seed, rank=self.rank, world_size=self.world,
            num_threads=config.loader_threads, shuffle=True)
        if objective is not None:
            loader_options.update(augmentations=tuple(objective.augmentations),
                                  augment_fraction=objective.augment_fraction, n_views=objective.n_views,
                                  held_out_users=objective.held_out_users)
        self.architecture_loader = None
        if self.architecture is not None and self.architecture.source == "held_out":
            loader_options["held_out_users"] = self.architecture.held_out_users
            self.architecture_loader = dataset.train_loader(**loader_options, held_out=True)
        self.train_loader = dataset.train_loader(**loader_options)
        self.steps_per_epoch = distributed.min_over_ranks(len(self.train_loader))
        if self.steps_per_epoch < 1:
            raise ValueError("the training split gives no training batch: no user has a training target")
        self.epochs = config.epochs
        if config.fast_dev_run:
            self.epochs, self.steps_per_epoch = 1, min(self.steps_per_epoch, FAST_DEV_BATCHES)
        self.callbacks.schedule(self.epochs, self.steps_per_epoch)
        self.optimizer = make_optimizer(self.step_module, config,
                                        exclude=self.architecture.parameters if self.architecture else ())
        self._weights = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.architecture_optimizer = self._architecture_optimizer(negatives)
        self._architecture_batches: tuple[int, Any] | None = None  # (next index, iterator)
        self.scheduler = make_scheduler(self.optimizer, config, self.epochs * self.steps_per_epoch)
        self.autocast_dtype = torch.bfloat16 if (config.amp and self.device.type == "cuda") else None
        self.progress = Progress()
        if resume:
            check_dataset(self.run_dir, config.data, dataset)
            self._restore(load_checkpoint(self.run_dir / CHECKPOINT_DIR / LAST))
        elif distributed.is_main():
            self._start_run_dir()
        # Wall-clock origin of this run: the job's start, or, after a resume, as much time before
        # now as the run had used when its checkpoint was written.
        self._origin = started_at if not resume else time.perf_counter() - self.progress.elapsed_s
        distributed.barrier()

    @property
    def eval_model(self) -> SequentialRecommender:
        """The weights that validation scores, best.pt keeps and the test evaluates: the moving
        average when ``ema_decay`` is set, the trained weights otherwise."""
        return self.model if self.average is None else self.average.model

    # ----------------------------------------------------------------------------------- files
    def _start_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG, to_yaml(self.config))
        pin_dataset(self.run_dir, self.config.data, self.dataset)
        (self.run_dir / METRICS).write_text("")

    def _append_metrics(self, record: dict[str, Any]) -> None:
        self.progress.metrics_lines += 1
        if distributed.is_main():
            with open(self.run_dir / METRICS, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            "format": 1,
            "model": self.model.state_dict(),
            "average": None if self.average is None else self.average.model.state_dict(),
            "auxiliary": self._auxiliary_state(),
            "objective": None if self.step_module.objective is None else self.step_module.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "architecture_optimizer": None if self.architecture_optimizer is None
            else self.architecture_optimizer.state_dict(),
            "rng": capture_rng_state(),
            "progress": dict(vars(self.progress)),
            "config": stored_dict(self.config),
            "n_items": int(self.dataset.n_items),
        }

    def _auxiliary_state(self) -> dict[str, Tensor] | None:
        auxiliary = self.step_module.auxiliary
        return None if auxiliary is None else auxiliary.state_dict()

    def _save_last(self) -> None:
        # Every rank's RNG state differs; rank 0's checkpoint restores rank 0 exactly and the
        # others from their own file, so a resumed torchrun run is exact too.
        state = self._checkpoint_state()
        name = LAST if self.rank == 0 else f"last.rank{self.rank}.pt"
        save_checkpoint(self.run_dir / CHECKPOINT_DIR / name, state)
        distributed.barrier()

    def _save_best(self, valid: dict[str, float]) -> None:
        if distributed.is_main():
            save_checkpoint(self.run_dir / CHECKPOINT_DIR / BEST, {
                "format": 1, "model": self.eval_model.state_dict(), "epoch": self.progress.epoch, "valid": valid,
                "config": stored_dict(self.config), "n_items": int(self.dataset.n_items)})

    def _restore(self, state: dict[str, Any]) -> None:
        if self.rank:
            own = self.run_dir / CHECKPOINT_DIR / f"last.rank{self.rank}.pt"
            state = load_checkpoint(own)
        self.model.load_state_dict(state["model"])
        if self.average is not None:
            if state.get("average") is None:
                raise ValueError(f"{self.run_dir / CHECKPOINT_DIR / LAST} holds no weight average; resume "
                                 f"with the ema_decay it was trained with ({state['config'].get('ema_decay', 0.0)})")
            self.average.model.load_state_dict(state["average"])
        if self.step_module.auxiliary is not None:
            self.step_module.auxiliary.load_state_dict(state["auxiliary"])
        if self.step_module.objective is not None:
            self.step_module.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.architecture_optimizer is not None:
            self.architecture_optimizer.load_state_dict(state["architecture_optimizer"])
        restore_rng_state(state["rng"])
        self.progress = Progress(**state["progress"])
        if distributed.is_main():  # drop metrics lines written after this checkpoint
            lines = (self.run_dir / METRICS).read_text().splitlines(keepends=True)
            atomic_write_text(self.run_dir / METRICS, "".join(lines[: self.progress.metrics_lines]))

    # ----------------------------------------------------------------------- architecture steps
    def _architecture_optimizer(self, negatives: int) -> torch.optim.Optimizer | None:
        step = self.architecture
        if step is None:
            return None
        if step.source == "valid" and negatives:
            raise ValueError("architecture steps on the validation split train with cross-entropy over all items; "
                             f"the configured loss draws {negatives} negatives per target")
        steps = self.epochs * self.steps_per_epoch // step.every
        return torch.optim.AdamW(step.parameters, lr=step.lr(steps), weight_decay=step.weight_decay)

    def _architecture_source_batches(self, index: int):
        """The architecture's batches from its ``index``-th on: its source's epochs one after
        another, so that the batch of a step is a function of the step alone (and resumes so)."""
        if self.architecture_loader is not None:
            per_epoch = len(self.architecture_loader)
            if per_epoch < 1:
                raise ValueError("the held-out users give no training batch: raise held_out_users")
            epoch, start = divmod(index, per_epoch)
            while True:
                yield from self.architecture_loader.epoch(epoch, start_batch=start)
                epoch, start = epoch + 1, 0
        evaluation = self.dataset.eval_loader(split="valid", batch_size=max(1, self.config.batch_size),
                                              max_len=self.config.model.max_len, seed=self.config.seed,
                                              num_threads=self.config.loader_threads)
        skip = index % len(evaluation)
        while True:
            for batch in evaluation:
                if skip:
                    skip -= 1
                    continue
                targets = np.zeros_like(batch["inputs"])
                targets[:, -1] = batch["targets"]  # the validation item follows the training sequence
                yield {"inputs": batch["inputs"], "targets": targets, "users": batch["users"]}

    def _architecture_batch(self, index: int) -> dict:
        if self._architecture_batches is None or self._architecture_batches[0] != index:
            self._architecture_batches = (index, self._architecture_source_batches(index))
        _, batches = self._architecture_batches
        self._architecture_batches = (index + 1, batches)
        return next(batches)

    def _architecture_step(self, index: int) -> None:
        inputs, targets, negatives = self._batch_tensors(self._architecture_batch(index))
        self.architecture_optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.architecture.loss(self.step_module, inputs, targets, negatives, index)
        loss.backward()
        self.architecture_optimizer.step()
        # The weights learn nothing from this batch, and a weight step's clipping never sees the
        # architecture's gradient.
        self.optimizer.zero_grad(set_to_none=True)
        self.architecture_optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------------------- training
    def _tensor(self, array) -> Tensor:
        return torch.from_numpy(np.asarray(array)).to(self.device, non_blocking=True).long()

    def _batch_tensors(self, batch: dict) -> tuple[Tensor, Tensor, Tensor | None]:
        negatives = batch.get("negatives")
        return (self._tensor(batch["inputs"]), self._tensor(batch["targets"]),
                None if negatives is None else self._tensor(negatives))

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train_epoch(self, epoch: int) -> float:
        p, config = self.progress, self.config
        self.train_module.train()
        loss_sum, loss_count = 0.0, 0
        batches = self.train_loader.epoch(epoch, start_batch=p.batch)
        bar = tqdm(total=self.steps_per_epoch, initial=p.batch, desc=f"epoch {epoch + 1}", leave=False,
                   disable=not (config.progress and distributed.is_main()), file=sys.stderr)
        for index in range(p.batch, self.steps_per_epoch):
            started = time.perf_counter()
            batch = next(batches)
            self.callbacks.before_batch(epoch, index)
            inputs, targets, negatives = self._batch_tensors(batch)
            views = None if "views" not in batch else self._tensor(batch["views"])
            n_targets = np.count_nonzero(batch["targets"])
            with self._autocast():
                loss = self.train_module(inputs, targets, negatives, views)
            finite = bool(torch.isfinite(loss).item())
            if self.world > 1:
                finite = not distributed.any_over_ranks(not finite)
            if not finite:
                last = self.run_dir / CHECKPOINT_DIR / LAST
                kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"the training loss became {loss.item()} at epoch {epoch + 1}, batch {index + 1} "
                    f"(step {p.step + 1}); stopped without saving, {kept}. Try a lower --lr or --clip-grad-norm.")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad_norm > 0:
                nn.utils.clip_grad_norm_(self._weights, config.clip_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            if self.average is not None:
                self.average.update(p.step)
            loss_sum += float(loss.item())
            loss_count += 1
            p.batch, p.step = index + 1, p.step + 1
            if self.architecture is not None and p.step % self.architecture.every == 0:
                self._architecture_step(p.step // self.architecture.every - 1)
            p.samples += int(n_targets) * self.world
            p.train_s += time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}")
            if config.checkpoint_every_steps and p.step % config.checkpoint_every_steps == 0 and p.batch < self.steps_per_epoch:
                p.elapsed_s = time.perf_counter() - self._origin
                self._save_last()
        bar.close()
        return loss_sum / max(loss_count, 1)

    def _validate(self, split: str = "valid") -> dict[str, float]:
        return evaluate_split(self.eval_model, self.dataset, self.config, split, self.device)

    def _test(self) -> dict[str, float]:
        """The test metrics of the selected weights, with each user's rank counts saved."""
        users, counts = rank_split(self.eval_model, self.dataset, self.config, "test", self.device)
        if distributed.is_main():
            atomic_write_bytes(self.run_dir / TEST_RANKS, lambda handle: np.savez(
                handle, users=users, greater=counts.greater, ties=counts.ties, n_negatives=counts.n_negatives))
        return summarise(counts, ties=self.config.ties)

    def fit(self, select: bool = True, test: bool = True) -> dict[str, Any]:
        """Train until the epoch budget or early stopping, then test the best weights once.

        ``select=False`` trains for the whole epoch budget without validation, model selection
        or test (a supernet's warm-up): the result is the last weights. ``test=False`` selects
        on validation as usual and leaves the test split unread (a supernet whose selected
        weights a search derives its model from, which is tested after retraining)."""
        config, p = self.config, self.progress
        while p.epoch < self.epochs and not p.stopped:
            epoch_started = time.perf_counter()
            loss = self._train_epoch(p.epoch)
            p.epoch, p.batch = p.epoch + 1, 0
            record: dict[str, Any] = {"epoch": p.epoch, "step": p.step, "train_loss": loss,
                                      "lr": self.scheduler.get_last_lr()[0]}
            if select and (p.epoch % config.eval_every == 0 or p.epoch == self.epochs):
                valid = self._validate("valid")
                p.elapsed_s = time.perf_counter() - self._origin
                value = valid[config.metric]
                record["valid"] = valid
                if value > p.best_value:
                    p.best_value, p.best_epoch, p.best_valid = value, p.epoch, valid
                    p.evals_without_improvement = 0
                    p.time_to_best_s = p.elapsed_s
                    self._save_best(valid)
                else:
                    p.evals_without_improvement += 1
                    if (config.patience and p.evals_without_improvement >= config.patience
                            and p.epoch >= config.min_epochs):
                        p.stopped = f"no {config.metric} improvement in {config.patience} evaluations"
            record.update(self.callbacks.after_epoch(p.epoch))
            p.elapsed_s = time.perf_counter() - self._origin
            record["elapsed_s"] = round(p.elapsed_s, 3)
            self._append_metrics(record)
            self._save_last()
            if distributed.is_main():
                shown = f" valid {config.metric} {record['valid'][config.metric]:.4f}" if "valid" in record else ""
                self.log(f"epoch {p.epoch:>3}  loss {loss:.4f}{shown}  ({time.perf_counter() - epoch_started:.1f} s)")
        if not select:
            return {"epochs_run": p.epoch, "elapsed_s": round(p.elapsed_s, 3),
                    "train_samples_per_s": round(p.samples / p.train_s, 1) if p.train_s else 0.0}
        return self._finish(test)

    def _finish(self, test: bool) -> dict[str, Any]:
        config, p = self.config, self.progress
        best = load_checkpoint(self.run_dir / CHECKPOINT_DIR / BEST) if distributed.is_main() else None
        best_model = distributed.broadcast_object(best["model"] if best is not None else None)
        self.eval_model.load_state_dict(best_model)
        result = {
            "model": config.model.name,
            "loss": config.resolved_loss(),
            "protocol": protocol_label(config.filter_history, config.eval_negatives, config.eval_sampler),
            "valid": p.best_valid,
            **({"test": self._test()} if test else {}),
            "best_epoch": p.best_epoch,
            "epochs_run": p.epoch,
            "stopped": p.stopped or "epoch budget reached",
            "time_to_best_s": round(p.time_to_best_s, 3),
            "elapsed_s": round(p.elapsed_s, 3),
            "train_samples_per_s": round(p.samples / p.train_s, 1) if p.train_s else 0.0,
            "world_size": self.world,
            "device": str(self.device),
        }
        if distributed.is_main():
            atomic_write_text(self.run_dir / RESULT, json.dumps(result, indent=2) + "\n")
        return {**result, "run_dir": str(self.run_dir)}  # the stored result names no location
