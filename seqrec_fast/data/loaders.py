"""Batch loaders over the Rust batch streams. Batches are dicts of int64 numpy arrays that
`torch.from_numpy` wraps without copying; they are built on background threads without the GIL
and depend only on (seed, epoch), never on `num_threads`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .. import _loader

Batch = dict[str, np.ndarray]

MODES = ("causal", "cloze")
WINDOWS = ("last", "sliding", "stride")
SAMPLERS = ("uniform", "popularity")
MASK_SPANS = ("targets", "window")
AUGMENTATIONS = ("mask", "crop", "reorder")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class TrainLoaderConfig:
    """How training batches are built.

    batch_size: targets per batch (next items, or masked positions for "cloze"): each batch holds
      as many windows as make about that many, so an epoch takes the same number of steps
      whatever the windows (RecBole's batch is 256 prefixes of one target each). The count of
      batches is the same every epoch.
    mode: "causal" (next-item targets at every position: SASRec, NextItNet, GRU4Rec) or "cloze"
      (masked items, mask token n_items + 1, with probability `mask_prob`: BERT4Rec). In "cloze",
      a share `mask_last_ratio` of the windows masks only its last item instead, the task
      evaluation poses (RecBole's ft_ratio, which RecBole draws per batch); they go to batches of
      batch_size windows. `mask_span` says where the other windows' masks fall: "targets" (the
      window's target positions, so each training item is masked in one window an epoch at
      most) or "window" (any position, context included, as RecBole masks any item of a prefix).
    window: "last" (one sample per user: the last max_len positions of its training sequence),
      "sliding" (the training sequence cut into windows of max_len targets from the end, so that
      every training interaction is a target exactly once per epoch) or "stride" (windows of
      max_len positions ending every `stride` items, targets on the last `stride` positions only,
      the rest context: still one target per training interaction and epoch, but each sees at
      least max_len - stride items before it except near the sequence start; stride = max_len is
      "sliding", stride = 1 is one sample per prefix as in RecBole).
    n_negatives: negatives per target position, drawn by `negative_sampler` ("uniform" or
      "popularity" over training counts), never an item of the user's training sequence.
    augmentations: if set (subset of "mask", "crop", "reorder"), batches also hold "views":
      `n_views` (>= 1) augmented views of each input sequence, each destroying `augment_fraction`
      by an augmentation drawn from the set. A window's views come from its own random stream one
      after the other, so its first views are the same whatever n_views (n_views=8 extends the
      two views of n_views=2). n_views applies only with augmentations.
    rank / world_size: users are split disjointly between ranks; together they make one epoch.
    held_out_users: share of the users (a seed-fixed draw, the same whatever rank / world_size)
      set aside as a held-out source; held_out: True reads those users, False the others.
    """

    batch_size: int = 256
    max_len: int = 50
    mode: str = "causal"
    window: str = "last"
    stride: int | None = None  # window="stride" only: 1..max_len
    n_negatives: int = 0
    negative_sampler: str = "uniform"
    mask_prob: float = 0.2
    mask_last_ratio: float = 0.0
    mask_span: str = "targets"
    augmentations: tuple[str, ...] | None = None
    augment_fraction: float = 0.25
    n_views: int = 2
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    num_threads: int = 1
    shuffle: bool = True
    held_out_users: float = 0.0
    held_out: bool = False

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("window", self.window, WINDOWS)
        if (self.window == "stride") != (self.stride is not None):
            raise ValueError(f"stride is set exactly when window is 'stride', got window={self.window!r}, stride={self.stride!r}")
        if self.stride is not None and not 1 <= self.stride <= self.max_len:
            raise ValueError(f"stride must be in 1..max_len ({self.max_len}), got {self.stride}")
        _check_choice("negative_sampler", self.negative_sampler, SAMPLERS)
        if not 0.0 <= self.mask_last_ratio <= 1.0:
            raise ValueError(f"mask_last_ratio must be in [0, 1], got {self.mask_last_ratio}")
        if self.mask_last_ratio and self.mode != "cloze":
            raise ValueError(f"mask_last_ratio applies to mode 'cloze' only, not {self.mode!r}")
        _check_choice("mask_span", self.mask_span, MASK_SPANS)
        if self.mask_span != "targets" and self.mode != "cloze":
            raise ValueError(f"mask_span applies to mode 'cloze' only, not {self.mode!r}")
        for name in self.augmentations or ():
            _check_choice("augmentation", name, AUGMENTATIONS)
        if self.augmentations and self.n_views < 1:
            raise ValueError(f"n_views must be >= 1 (views per window with augmentations), got {self.n_views}")
        if not self.augmentations and self.n_views != 2:
            raise ValueError(f"n_views applies only with augmentations, got n_views={self.n_views} and augmentations={self.augmentations!r}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 builds batches in the calling thread), got {self.num_threads}")
        if not 0.0 <= self.held_out_users < 1.0:
            raise ValueError(f"held_out_users must be in [0, 1), got {self.held_out_users}")
        if self.held_out and not self.held_out_users:
            raise ValueError("held_out=True reads the held-out users, which needs held_out_users > 0")


class TrainLoader:
    """`len(loader)` batches per epoch on this rank; `loader.epoch(e)` iterates over them.

    Each batch: "inputs" int64 [B, L] left-padded with 0; "targets" int64 [B, L] (causal: the
    next item, cloze: the masked item, 0 elsewhere); "users" int64 [B]; "negatives" int64
    [B, L, n] when n_negatives > 0 (0 where the target is 0); "views" int64 [n_views, B, L] with
    augmentations (views[v, r] is view v of row r, left-padded with 0). B varies from batch to
    batch: it is the number of windows that hold about batch_size targets.
    """

    def __init__(self, sequences: _loader.Sequences, config: TrainLoaderConfig):
        self.config = config
        self._stream = _loader.TrainStream(
            sequences,
            config.batch_size,
            config.max_len,
            objective=config.mode,
            window=config.window,
            stride=config.stride,
            n_negatives=config.n_negatives,
            negative_sampler=config.negative_sampler,
            mask_prob=config.mask_prob,
            mask_last_ratio=config.mask_last_ratio,
            mask_span=config.mask_span,
            seed=config.seed,
            rank=config.rank,
            world_size=config.world_size,
            shuffle=config.shuffle,
            augmentations=list(config.augmentations) if config.augmentations else None,
            augment_fraction=config.augment_fraction,
            n_views=config.n_views,
            held_out_users=config.held_out_users,
            held_out=config.held_out,
        )

    def __len__(self) -> int:
        return len(self._stream)

    @property
    def n_samples(self) -> int:
        """Sequences (or windows) per epoch on this rank."""
        return self._stream.n_samples

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """The batches of `epoch` from `start_batch` on (exact resume after an interruption)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch} and {start_batch}")
        return self._stream.epoch(epoch, start_batch, self.config.num_threads)


@dataclass(frozen=True)
class EvalLoaderConfig:
    """Evaluation batches for split "valid" or "test".

    n_sampled_negatives: if > 0, each user also gets that many distinct negatives drawn by
    `negative_sampler`, never the target or an item of its history; they depend only on (seed,
    split, user), so every evaluation ranks the same candidates.
    """

    split: str = "valid"
    batch_size: int = 512
    max_len: int = 50
    n_sampled_negatives: int = 0
    negative_sampler: str = "uniform"
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    num_threads: int = 1

    def __post_init__(self) -> None:
        _check_choice("split", self.split, ("valid", "test"))
        _check_choice("negative_sampler", self.negative_sampler, SAMPLERS)


class EvalLoader:
    """Iterating yields batches: "inputs" int64 [B, L] (the items before the target, left
    padded), "targets" int64 [B], "users" int64 [B], "history_offsets" int64 [B + 1] and
    "history_items" int64 [nnz] (the distinct items before the target, the target itself
    excluded: what a full ranking filters out), and "negatives" int64 [B, n] if requested."""

    def __init__(self, sequences: _loader.Sequences, config: EvalLoaderConfig):
        self.config = config
        self._stream = _loader.EvalStream(
            sequences,
            config.split,
            config.batch_size,
            config.max_len,
            config.n_sampled_negatives,
            config.negative_sampler,
            config.seed,
            config.rank,
            config.world_size,
        )

    def __len__(self) -> int:
        return len(self._stream)

    @property
    def n_users(self) -> int:
        """Users evaluated on this rank."""
        return self._stream.n_users

    def __iter__(self) -> Iterator[Batch]:
        return self._stream.batches(self.config.num_threads)
