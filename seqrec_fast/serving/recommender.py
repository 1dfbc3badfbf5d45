"""A trained model that ranks items for sequences in the log's own ids: ``seqrec_fast.load``.

Rows are ranked as evaluation ranks them (``train.evaluation.full_ranking_candidates``): the
model's next-item scores over every item, padding never a candidate and, by default, none of
the row's history. A user of the dataset is ranked on its whole sequence (training, validation
and test items: what a deployed model would know), a new sequence on its own items."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..models import ModelSpec, SequentialRecommender
from .id_map import IdMap
from .trained_run import TrainedRun, locate

DEFAULT_BATCH_SIZE = 1024  # rows scored at once: [B, n_items] floats (ML-20M: about 110 MB)


@dataclass(frozen=True)
class TopK:
    """The best ``k`` candidates of each row, best first: ``items`` int64 [B, k] (dataset item
    indices, 0 where a row has fewer than ``k`` candidates) and ``scores`` float32 [B, k]
    (-inf there)."""

    items: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class EncodedSequences:
    """Sequences in dataset item indices, CSR: row r is ``items[offsets[r]:offsets[r + 1]]``;
    ``unknown[r]`` lists the values of row r that are no item of the dataset (left out)."""

    offsets: np.ndarray
    items: np.ndarray
    unknown: dict[int, list]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def gather_rows(offsets: np.ndarray, items: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR rows ``rows`` of (offsets, items) as a CSR of their own, items as int64."""
    starts = np.asarray(offsets[rows], dtype=np.int64)
    lengths = np.asarray(offsets[rows + 1], dtype=np.int64) - starts
    batch_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=batch_offsets[1:])
    positions = np.repeat(starts - batch_offsets[:-1], lengths) + np.arange(batch_offsets[-1])
    return batch_offsets, np.asarray(items[positions], dtype=np.int64)


def last_windows(offsets: np.ndarray, items: np.ndarray, max_len: int) -> np.ndarray:
    """int64 [B, max_len]: each CSR row's last ``max_len`` items, oldest first, left-padded with
    0 (the model's input)."""
    starts, ends = offsets[:-1, None], offsets[1:, None]
    positions = ends - max_len + np.arange(max_len)
    if not len(items):
        return np.zeros((len(offsets) - 1, max_len), dtype=np.int64)
    return np.where(positions >= starts, items[np.clip(positions, 0, len(items) - 1)], 0).astype(np.int64)


class Recommender:
    """A run's finished model with its dataset's id maps. ``score`` and ``recommend`` take
    sequences of original item ids, oldest first; ``recommend_users`` ranks the dataset's users."""

    def __init__(self, model: SequentialRecommender, spec: ModelSpec, dataset, run: TrainedRun, device: torch.device):
        self.model = model.eval()
        self.spec = spec
        self.dataset = dataset
        self.run = run
        self.device = device
        self.items = IdMap(dataset.item_ids(), dataset.n_items, first=1)
        self.users = IdMap(dataset.user_ids(), dataset.n_users, first=0)

    @property
    def max_len(self) -> int:
        """Items of a sequence the model reads (the most recent ones)."""
        return self.spec.model.max_len

    @property
    def item_ids(self) -> list:
        """The original item ids; column j of :meth:`score` belongs to ``item_ids[j]``."""
        return self.items.originals.to_pylist()

    @property
    def user_ids(self) -> list:
        return self.users.originals.to_pylist()

    # ---------------------------------------------------------------------------- sequences
    def encode(self, sequences: Sequence[Sequence[Any]]) -> EncodedSequences:
        """Original item ids -> dataset item indices; unknown ids are left out and listed."""
        lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
        found = self.items.indices(value for sequence in sequences for value in sequence)
        rows = np.repeat(np.arange(len(sequences)), lengths)
        known = found >= 0
        unknown: dict[int, list] = {}
        if not known.all():
            starts = np.cumsum(lengths) - lengths
            for row in np.unique(rows[~known]).tolist():
                flags = known[starts[row]:starts[row] + lengths[row]]
                unknown[row] = [value for value, ok in zip(sequences[row], flags) if not ok]
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[known], minlength=len(sequences)), out=offsets[1:])
        return EncodedSequences(offsets, found[known], unknown)

    @torch.no_grad()
    def scores_of(self, offsets: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """float32 [B, n_items + 1] next-item scores of CSR rows of item indices (column 0 is
        padding)."""
        inputs = torch.from_numpy(last_windows(offsets, items, self.max_len)).to(self.device)
        return self.model.predict(inputs).float()

    def top_k(self, offsets: np.ndarray, items: np.ndarray, k: int, filter_history: bool) -> TopK:
        """The ``k`` best items of each CSR row, ranked as evaluation ranks (its history left out
        with ``filter_history``)."""
        from ..train.evaluation import full_ranking_candidates

        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = self.scores_of(offsets, items)
        candidates = full_ranking_candidates(len(offsets) - 1, scores.shape[1], offsets, items, filter_history,
                                             scores.device)
        best = scores.masked_fill(~candidates, float("-inf")).topk(min(k, scores.shape[1] - 1), dim=1)
        top_items, top_scores = best.indices.cpu().numpy(), best.values.cpu().numpy()
        top_items[np.isneginf(top_scores)] = 0
        return TopK(top_items.astype(np.int64), top_scores)

    def _warn_unknown(self, encoded: EncodedSequences, first_row: int) -> None:
        for row, values in encoded.unknown.items():
            warnings.warn(f"sequence {first_row + row}: unknown item ids {values[:10]} left out", stacklevel=3)

    def score(self, sequences: Sequence[Sequence[Any]], *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """float32 [len(sequences), n_items]: each item's score as the next one (column j is
        ``item_ids[j]``). Unknown item ids are left out with a warning; a row with no known item
        is NaN."""
        parts = []
        for start in range(0, len(sequences), batch_size):
            encoded = self.encode(sequences[start:start + batch_size])
            self._warn_unknown(encoded, start)
            scores = self.scores_of(encoded.offsets, encoded.items)[:, 1:].cpu().numpy()
            scores[encoded.lengths == 0] = np.nan
            parts.append(scores)
        return np.concatenate(parts) if parts else np.zeros((0, len(self.items)), dtype=np.float32)

    def recommend(self, sequences: Sequence[Sequence[Any]], k: int = 10, *, filter_history: bool = True,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[tuple[Any, float]]]:
        """The ``k`` best (item id, score) pairs for each sequence, best first; with
        ``filter_history`` none of the sequence's own items. Unknown item ids are left out with a
        warning; a sequence with no known item gets an empty list."""
        results: list[list[tuple[Any, float]]] = []
        for start in range(0, len(sequences), batch_size):
            encoded = self.encode(sequences[start:start + batch_size])
            self._warn_unknown(encoded, start)
            top = self.top_k(encoded.offsets, encoded.items, k, filter_history)
            for row, length in enumerate(encoded.lengths):
                results.append([] if not length else self.pairs(top, row))
        return results

    def pairs(self, top: TopK, row: int) -> list[tuple[Any, float]]:
        kept = top.items[row] > 0
        ids = self.items.originals_of(top.items[row][kept]).to_pylist()
        return list(zip(ids, top.scores[row][kept].tolist()))

    # -------------------------------------------------------------------------------- users
    def user_indices(self, user_ids: Iterable[Any]) -> np.ndarray:
        """Dataset user indices of original user ids, -1 for an unknown one."""
        return self.users.indices(user_ids)

    def recommend_users(self, users: np.ndarray | None = None, k: int = 10, *, filter_history: bool = True,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[np.ndarray, TopK]]:
        """(user indices, their top k) a batch at a time, for ``users`` (dataset indices; every
        user by default), each ranked on its whole sequence."""
        users = np.arange(self.dataset.n_users) if users is None else np.asarray(users, dtype=np.int64)
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            offsets, items = gather_rows(self.dataset.offsets, self.dataset.items, batch)
            yield batch, self.top_k(offsets, items, k, filter_history)

    def __repr__(self) -> str:
        return (f"Recommender({self.spec.model.name}, items={len(self.items)}, users={len(self.users)}, "
                f"run={str(self.run.root)!r})")


def load(run_dir: str | Path, *, data: str | None = None, device: str = "auto") -> Recommender:
    """The finished model of a training run or a retrained search (RUN_DIR), with its dataset
    (``data``: where the run's dataset now is, if it moved; its content must match).
    ``device``: "auto" (CUDA when available), "cpu" or "cuda"."""
    from ..train.config import build_config
    from ..train.data_source import absolute_spec, open_dataset
    from ..train.distributed import resolve_device
    from ..train.evaluation import load_trained_model
    from ..train.run_dir import check_dataset

    run = locate(run_dir)
    config = build_config(run.config_path)
    data_spec = absolute_spec(data) if data else config.data
    dataset = open_dataset(data_spec)
    check_dataset(run.training_dir, data_spec, dataset)
    spec = ModelSpec.load(run.spec_path) if run.spec_path else ModelSpec(config.model)
    target = resolve_device(device)
    model = load_trained_model(spec, run.checkpoint, dataset.n_items).to(target)
    return Recommender(model, spec, dataset, run, target)
