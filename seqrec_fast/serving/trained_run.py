"""The finished model a run directory holds: which checkpoint, which model spec, which dataset.

A training run (``seqrec-fast train``) holds its model in RUN_DIR/checkpoints/best.pt once
RUN_DIR/result.json says training finished. A search run holds it in RUN_DIR/retrain/ (its
spec in RUN_DIR/spec.json), once ``seqrec-fast retrain`` finished; RUN_DIR/retrain itself names
the same model. Anything else is refused with what to run first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..nas.search_run import RETRAIN, SPEC
from ..train.run_dir import CHECKPOINTS, CONFIG, run_kind

BEST = "best.pt"
RESULT = "result.json"


@dataclass(frozen=True)
class TrainedRun:
    root: Path  # the directory the user named (a search run, not its retrain/, for searched models)
    training_dir: Path  # where the model was trained: ``root`` or ``root/retrain``
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


def search_spec(training_dir: str | Path) -> Path | None:
    """RUN_DIR/spec.json when ``training_dir`` is a search's retraining (RUN_DIR/retrain): the
    model it trained, which its config.yaml names by backbone configuration only."""
    training_dir = Path(training_dir)
    if training_dir.name == RETRAIN and run_kind(training_dir.parent) == "search":
        return training_dir.parent / SPEC
    return None


def locate(run_dir: str | Path) -> TrainedRun:
    """The finished model of a training or search run directory (or a search's retrain/)."""
    root = Path(run_dir)
    if root.name == RETRAIN and run_kind(root.parent) == "search":
        root = root.parent
    kind = run_kind(root)
    if kind == "train":
        _finished(root, f"seqrec-fast train --resume --out {root}")
        return TrainedRun(root, root, None)
    if kind == "search":
        if not (root / SPEC).is_file():
            raise ValueError(f"{root} holds a search that has not finished (no {SPEC}): resume it with "
                             f"`seqrec-fast search ALGORITHM --resume --out {root}`")
        retrain = root / RETRAIN
        if run_kind(retrain) != "train":
            raise ValueError(f"{root} holds a finished search whose model is not trained yet: run "
                             f"`seqrec-fast retrain {root}` first")
        _finished(retrain, f"seqrec-fast retrain {root}")
        return TrainedRun(root, retrain, root / SPEC)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such run directory")
    raise ValueError(f"{root} holds no run of seqrec-fast (no {CONFIG} with a finished model); "
                     "pass the --out directory of `seqrec-fast train` or of a search")
