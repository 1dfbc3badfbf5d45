"""What every search does besides its algorithm: claim the run directory and record (or check,
on resume) its configuration and dataset; drive an evolution with progress, timing and a state
saved after every evaluation; load a finished search's configuration; retrain its derived model.

An algorithm supplies the parts that are its own (a fitness, a supernet, trainer callbacks) and
these functions keep every search's run directory the same shape (see :mod:`.search_run`)."""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..train.config import TrainConfig, set_option, to_yaml, validate
from ..train.run_dir import DISPLAY_ONLY, check_dataset, claim, move_aside, pin_dataset
from .evolution import DifferentialEvolution
from .search_run import RETRAIN, SPEC, SearchRun


def default_log(message: str) -> None:
    print(message, file=sys.stderr)


def _yaml_dict(train: TrainConfig) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(to_yaml(train))


def _without_display_options(settings: dict) -> dict:
    return {**settings, "train": {k: v for k, v in settings.get("train", {}).items() if k not in DISPLAY_ONLY}}


@contextlib.contextmanager
def open_search(algorithm: str, train: TrainConfig, options: dict[str, Any], dataset, *, resume: bool,
                overwrite: bool, log: Callable[[str], None]) -> Iterator[SearchRun]:
    """Holds ``train.out``'s lock for the search. A new search records its configuration
    (algorithm, ``options``, training) and pins the dataset; a resumed one must find both as it
    left them (display-only options aside)."""
    with claim(train.out, "search", resume=resume, overwrite=overwrite) as lock:
        if lock.moved_aside is not None:
            log(f"moved the earlier {train.out} aside to {lock.moved_aside}")
        run = SearchRun(train.out)
        settings = {"algorithm": algorithm, "search": options, "train": _yaml_dict(train)}
        if resume:
            saved = run.read_config()
            saved["train"].pop("out", None)  # written by earlier versions; the directory is where it is now
            if _without_display_options(saved) != _without_display_options(settings):
                raise ValueError(f"{run.root} holds a search with another configuration; resume it with its own "
                                 f"(seqrec-fast search {algorithm} --out {run.root} --resume) or choose another --out")
            check_dataset(run.root, train.data, dataset)
        else:
            run.write_config(settings)
            pin_dataset(run.root, train.data, dataset)
        yield run


def load_search_config(run: SearchRun, algorithm: str | None = None) -> tuple[str, TrainConfig, dict[str, Any]]:
    """(algorithm, training config, search options as stored) of the search in ``run``;
    ``algorithm`` names the one expected there."""
    saved = run.read_config()
    if algorithm is not None and saved["algorithm"] != algorithm:
        raise ValueError(f"{run.root} holds a {saved['algorithm']} search, not {algorithm}")
    train = TrainConfig()
    for key, value in saved["train"].items():
        if key != "out":  # written by earlier versions; the run is where it is now
            set_option(train, key, value)
    train.out = str(run.root)
    validate(train)
    return saved["algorithm"], train, saved.get("search") or {}


def evolve(run: SearchRun, new_evolution: Callable[[], DifferentialEvolution],
           fitness: Callable[[Sequence[float]], float], describe: Callable[[dict], dict], *, metric: str,
           progress: bool, label: str, log: Callable[[str], None]) -> tuple[DifferentialEvolution, float]:
    """Runs an evolution to its end, resuming from the run's state file, which is rewritten
    (with the candidates and the best so far, each entry passed through ``describe``) after every
    evaluation. Returns the evolution and the search seconds summed over resumed runs."""
    from tqdm import tqdm

    state = run.load_state()
    evolution = DifferentialEvolution.from_state(state) if state else new_evolution()
    config = evolution.config
    total = config.population * (config.rounds + 1)
    bar = tqdm(total=total, initial=min(len(evolution.history), total), desc=label, file=sys.stderr,
               disable=not progress)
    started = time.perf_counter()
    previous_s = state.get("search_s", 0.0) if state else 0.0

    def save(state: dict) -> None:
        state = {**state, "search_s": previous_s + time.perf_counter() - started}
        history = [describe(h) for h in state["history"]]
        best = max(history, key=lambda h: h["fitness"]) if history else None
        run.save_state(state, history, best)
        bar.n = min(len(history), total)
        if best is not None:
            bar.set_postfix({metric: f"{best['fitness']:.4f}"})
        bar.refresh()

    while not evolution.finished:
        scores = evolution.run_round(fitness, save)
        log(f"round {evolution.round - 1}: best {max(s.fitness for s in scores):.4f}, "
            f"mean {np.mean([s.fitness for s in scores]):.4f}, best so far {evolution.best.fitness:.4f}")
    bar.close()
    return evolution, previous_s + time.perf_counter() - started


def retrain_search(run_dir, dataset, algorithm: str, callbacks: Callable[[TrainConfig], Any], *,
                   log: Callable[[str], None], started_at: float | None, overwrite: bool,
                   fast_dev_run: bool = False) -> dict[str, Any]:
    """Trains a finished search's model from scratch into RUN_DIR/retrain (resuming an
    interrupted retraining, or moving an earlier one aside with ``overwrite``), with model
    selection on validation and one test evaluation (``fast_dev_run``: a few batches of each);
    ``callbacks(train)`` gives the trainer's callbacks (train.callbacks), which build the model
    of RUN_DIR/spec.json, and the retraining's configuration names that model's. Holds the
    search's lock."""
    from ..models import ModelSpec
    from ..train.report import plot_training_curve
    from ..train.trainer import CHECKPOINT_DIR, LAST, METRICS, Trainer

    run = SearchRun(run_dir)
    with claim(run.root, "search", resume=True):
        _, train, _ = load_search_config(run, algorithm)
        trainer_callbacks = callbacks(train)
        check_dataset(run.root, train.data, dataset)
        retrain_dir = run.path(RETRAIN)
        if overwrite and retrain_dir.exists():
            log(f"moved the earlier {retrain_dir} aside to {move_aside(retrain_dir)}")
        config = copy.deepcopy(train)
        config.out = str(retrain_dir)
        config.model = ModelSpec.load(run.path(SPEC)).model
        config.fast_dev_run = config.fast_dev_run or fast_dev_run
        resume = (retrain_dir / CHECKPOINT_DIR / LAST).is_file()
        trainer = Trainer(config, dataset, resume=resume, log=log, started_at=started_at,
                          callbacks=trainer_callbacks)
        result = trainer.fit()
        plot_training_curve(retrain_dir / METRICS, retrain_dir / "training_curve.png", train.metric)
    return result
