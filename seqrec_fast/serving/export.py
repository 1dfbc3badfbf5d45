"""``seqrec-fast export``: a run's finished model as a directory that plain torch serves, where
seqrec_fast is not installed:

    DIR/model.pt2          a torch.export program: item indices int64 [B, max_len] (the last
                           max_len items, oldest first, left-padded with 0) -> scores float32
                           [B, n_items]; traced with the native ops replaced by their references
    DIR/item_ids.parquet   column ``item_id``: row j is the item of score column j, fed to the
                           program as index j + 1
    DIR/model_card.json    architecture spec, training config, metrics, data statistics, versions

``torch.export.load(DIR/model.pt2).module()`` runs it. The export is checked before it is
published: the saved program, loaded back, must reproduce the run's model on the dataset's users."""

from __future__ import annotations

import datetime
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor, nn

from ..atomic_io import atomic_write_bytes, atomic_write_json
from ..models import SequentialRecommender
from ..ops import reference_ops
from .recommender import Recommender, gather_rows, last_windows, load

PROGRAM = "model.pt2"
ITEM_IDS = "item_ids.parquet"
CARD = "model_card.json"
CARD_FORMAT = 1
CHECK_USERS = 512  # dataset users whose scores the saved program must reproduce
TOLERANCE = 1e-5


class NextItemScores(nn.Module):
    """What the program computes: the score of every item (not padding) as the next one."""

    def __init__(self, model: SequentialRecommender):
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.predict_traceable(inputs)[:, 1:]


def export_program(recommender: Recommender) -> torch.export.ExportedProgram:
    model = NextItemScores(recommender.model.cpu().eval())
    example = torch.zeros(2, recommender.max_len, dtype=torch.int64)
    example[:, -1] = 1
    batch = torch.export.Dim("batch", min=1)
    with reference_ops(), warnings.catch_warnings():
        # nn.GRU re-assigns its flat weight list while traced; the program stores them as constants.
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)


def check_users(recommender: Recommender) -> tuple[np.ndarray, np.ndarray]:
    """A spread of dataset users' windows (longest, shortest and in between), and their CSR."""
    n_users = recommender.dataset.n_users
    users = np.unique(np.linspace(0, n_users - 1, min(n_users, CHECK_USERS)).astype(np.int64))
    return gather_rows(recommender.dataset.offsets, recommender.dataset.items, users)


def largest_difference(program: torch.export.ExportedProgram, recommender: Recommender) -> float:
    offsets, items = check_users(recommender)
    expected = recommender.scores_of(offsets, items)[:, 1:].cpu()
    inputs = torch.from_numpy(last_windows(offsets, items, recommender.max_len))
    module = program.module()
    with torch.no_grad():
        got = torch.cat([module(inputs[:1]), module(inputs[1:])]) if len(inputs) > 1 else module(inputs)
    return float((got - expected).abs().max())


def model_card(recommender: Recommender, difference: float) -> dict[str, Any]:
    from .. import __version__
    from ..train.config import build_config, stored_dict
    from ..train.data_source import content_checksum

    run, dataset = recommender.run, recommender.dataset
    result = run.result()
    return {
        "format": CARD_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seqrec_fast": __version__,
        "torch": torch.__version__,
        "files": {"program": PROGRAM, "item_ids": ITEM_IDS},
        "input": {"dtype": "int64", "shape": ["batch", recommender.max_len], "max_len": recommender.max_len,
                  "padding": 0, "order": "the last max_len items, oldest first, left-padded with 0",
                  "item_index": f"row j of {ITEM_IDS} is index j + 1"},
        "output": {"dtype": "float32", "shape": ["batch", len(recommender.items)],
                   "columns": f"column j scores row j of {ITEM_IDS}; higher is better"},
        "model": recommender.spec.to_dict(),
        "training": stored_dict(build_config(run.config_path)),
        "metrics": {key: result.get(key) for key in ("protocol", "valid", "test", "best_epoch", "epochs_run")},
        "data": {**dataset.stats(), "checksum": content_checksum(dataset)},
        "check": {"users": min(dataset.n_users, CHECK_USERS), "max_abs_difference": difference,
                  "tolerance": TOLERANCE},
    }


def _check_out(out: Path) -> None:
    """``out`` must be new, empty or an earlier export (which the new one replaces)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; name a directory for the export")
    if out.is_dir() and any(out.iterdir()) and not (out / CARD).is_file():
        raise ValueError(f"--out {out} exists and holds no earlier export ({CARD}); choose another directory")


def _publish(staging: Path, out: Path) -> None:
    """Moves the finished ``staging`` directory to ``out``, replacing an earlier export there."""
    _check_out(out)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        staging.rename(out)


def export_run(run_dir: str | Path, out: str | Path, *, data: str | None = None) -> dict[str, Any]:
    """Exports RUN_DIR's finished model to ``out`` (see the module docstring); returns the card."""
    out = Path(out)
    _check_out(out)
    recommender = load(run_dir, data=data, device="cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        atomic_write_bytes(staging / PROGRAM, lambda handle: torch.export.save(export_program(recommender), handle))
        difference = largest_difference(torch.export.load(staging / PROGRAM), recommender)
        if not difference <= TOLERANCE:
            raise RuntimeError(f"the exported program differs from the run's model by {difference:.3g} "
                               f"(tolerance {TOLERANCE}); nothing is written to {out}")
        atomic_write_bytes(staging / ITEM_IDS, lambda handle: pq.write_table(
            pa.table({"item_id": recommender.items.originals}), handle))
        card = model_card(recommender, difference)
        atomic_write_json(staging / CARD, card)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return card
