"""The finished model a run directory holds: which checkpoint, which model spec, which dataset.

A training run (``seqrec-fast train``) holds its model in RUN_DIR/checkpoints/best.pt once
RUN_DIR/result.json says training finished. A search run holds it (its spec in RUN_DIR/spec.json)
in the directory its algorithm trains it in (``Algorithm.model_dir``): RUN_DIR/retrain/ once
``seqrec-fast retrain`` finished, or RUN_DIR/supernet/ for CANet, whose search trains and tests
its model; that directory itself names the same model. Anything else is refused with what to run
first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..nas.search_run import RETRAIN, SPEC, SearchRun
from ..train.run_dir import CHECKPOINTS, CONFIG, run_kind

BEST = "best.pt"
RESULT = "result.json"


@dataclass(frozen=True)
class TrainedRun:
    root: Path  # the directory the user named (a search run, not its retrain/, for searched models)
    training_dir: Path  # where the model was trained: ``root``, ``root/retrain`` or ``root/supernet``
    spec_path: Path | None  # the search's ModelSpec; None for a plain backbone (config.yaml's model)

    @property
    def checkpoint(self) -> Path:
        return self.training_dir / CHECKPOINTS / BEST

    @property
    def config_path(self) -> Path:
        return self.training_dir / CONFIG

    def result(self) -> dict[str, Any]:
        """The training result (best validation metrics, the one test evaluation, timings)."""
        return json.loads((self.training_dir / RESULT).read_text())


def _finished(training_dir: Path, resume_with: str) -> None:
    if not (training_dir / RESULT).is_file():
        state = "its best checkpoint so far" if (training_dir / CHECKPOINTS / BEST).is_file() else "no checkpoint"
        raise ValueError(f"{training_dir} holds no finished model (no {RESULT}; {state}): finish it with "
                         f"{resume_with}")
    if not (training_dir / CHECKPOINTS / BEST).is_file():
        raise ValueError(f"{training_dir / CHECKPOINTS / BEST}: the finished run's best checkpoint is missing")


def model_dir(search_root: Path) -> str:
    """The directory under a search's run directory where its algorithm trains the model."""
    from ..algorithms import registry

    return registry.get(SearchRun(search_root).read_config()["algorithm"]).model_dir


def _is_search_model(training_dir: Path) -> bool:
    return run_kind(training_dir.parent) == "search" and training_dir.name == model_dir(training_dir.parent)


def search_spec(training_dir: str | Path) -> Path | None:
    """RUN_DIR/spec.json when ``training_dir`` trained a search's model (RUN_DIR/retrain, or
    CANet's RUN_DIR/supernet), which its config.yaml names by backbone configuration only."""
    training_dir = Path(training_dir)
    return training_dir.parent / SPEC if _is_search_model(training_dir) else None


def locate(run_dir: str | Path) -> TrainedRun:
    """The finished model of a training or search run directory (or of the directory inside a
    search that trained its model)."""
    root = Path(run_dir)
    if _is_search_model(root):
        root = root.parent
    kind = run_kind(root)
    if kind == "train":
        _finished(root, f"seqrec-fast train --resume --out {root}")
        return TrainedRun(root, root, None)
    if kind == "search":
        resume = f"`seqrec-fast search ALGORITHM --resume --out {root}`"
        if not (root / SPEC).is_file():
            raise ValueError(f"{root} holds a search that has not finished (no {SPEC}): resume it with {resume}")
        trained_in = model_dir(root)
        training_dir = root / trained_in
        finish = f"seqrec-fast retrain {root}" if trained_in == RETRAIN else resume.strip("`")
        if run_kind(training_dir) != "train":
            raise ValueError(f"{root} holds a finished search whose model is not trained yet: run `{finish}` first")
        _finished(training_dir, finish)
        return TrainedRun(root, training_dir, root / SPEC)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such run directory")
    raise ValueError(f"{root} holds no run of seqrec-fast (no {CONFIG} with a finished model); "
                     "pass the --out directory of `seqrec-fast train` or of a search")
