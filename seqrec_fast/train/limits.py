"""Up-front resource limits of a training run, checked before the model is built: a max_len
longer than any sequence only adds padding, so it is capped at the longest one; a training step
whose estimated memory exceeds the machine's is refused with the estimate, instead of dying in an
allocation (or by the kernel's OOM killer) minutes later."""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch

from .config import ConfigError, TrainConfig
from .fused_cross_entropy import chunk_rows, default_block_elements

log = logging.getLogger("seqrec_fast.train")

_FLOAT = 4  # bytes; activations are estimated in fp32 (bf16 autocast only makes them smaller)
_ATTENTION_MODELS = {"sasrec": 1, "bert4rec": 1, "stosa": 2}  # attention maps per layer


def enforce_limits(config: TrainConfig, dataset, resume: bool) -> None:
    """Caps ``config.model.max_len`` at the longest sequence (not on resume: the checkpoint's
    position table has the saved size), then refuses a step the machine cannot hold."""
    longest = int(np.diff(dataset.offsets).max()) if dataset.n_users else 1
    if not resume and config.model.max_len > longest:
        log.warning("max_len %d is above the longest sequence (%d items): using max_len %d, since longer "
                    "windows would hold only padding", config.model.max_len, longest, longest)
        config.model.max_len = longest
    from .distributed import resolve_device

    device = resolve_device(config.device)
    windows = windows_per_batch(config, dataset)
    needed, available = step_memory_bytes(config, windows, dataset.n_items, device), machine_memory_bytes(device)
    if needed > available:
        raise ConfigError(
            f"a training step needs about {needed / 1e9:.1f} GB (max_len {config.model.max_len}, "
            f"{windows} windows per batch, hidden_size {config.model.hidden_size}, "
            f"{config.model.num_layers} layers, {dataset.n_items} items), but this machine has "
            f"{available / 1e9:.1f} GB of {device.type.upper()} memory; lower max_len, batch_size or hidden_size")


def machine_memory_bytes(device: torch.device) -> int:
    """Total memory of the device a run trains on: the GPU's, or the machine's RAM."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def windows_per_batch(config: TrainConfig, dataset) -> int:
    """About how many windows the loader packs into a batch of ``batch_size`` targets: batch_size
    over the mean window's targets. A window is counted as holding its user's last ``max_len``
    training items (sliding windows hold more), with targets on at most ``stride`` of them for
    strided windows; cloze windows mask each target position (each position, with mask_span
    "window") with mask_prob (one at least), and mask-last cloze batches hold one target per
    window."""
    from ..models import model_class

    max_len, batch_size = config.model.max_len, config.batch_size
    cloze = model_class(config.model.name).objective == "cloze"
    if cloze and config.model.mask_last_ratio > 0:
        return batch_size
    train_lengths = np.diff(dataset.offsets) - 2  # the last two items are validation and test
    span = float(np.clip(train_lengths, 1, max_len).mean()) if dataset.n_users else 1.0
    if config.resolved_window() == "stride" and not (cloze and config.model.mask_span == "window"):
        span = min(span, config.loader_stride())
    targets = span * config.model.mask_prob + (1 - config.model.mask_prob) ** span if cloze else span
    return max(1, min(batch_size, math.ceil(batch_size / targets)))


def step_memory_bytes(config: TrainConfig, windows: int, n_items: int, device: torch.device) -> int:
    """An estimate of one training step's peak memory: what the backward keeps of the forward
    (attention maps, block activations), the loss's logits, and the weights with their
    gradients and Adam moments; or a full-ranking evaluation batch, if that is larger. Attention
    maps are counted as materialised, as on CPU; fused GPU attention needs less."""
    model = config.model
    length, hidden = model.max_len, model.hidden_size
    tokens, targets = windows * length, config.batch_size

    if model.name in _ATTENTION_MODELS:
        per_layer = tokens * (12 * hidden + 2 * model.inner_size)
        per_layer += 3 * windows * model.num_heads * length * length  # scores, softmax, dropout mask
        activations = model.num_layers * per_layer * _ATTENTION_MODELS[model.name]
    elif model.name == "nextitnet":
        activations = model.num_layers * len(model.dilations) * tokens * 10 * hidden
    else:  # gru4rec: the gates and states of every step
        activations = model.num_layers * tokens * (4 * model.inner_size + 2 * hidden)
    activations += tokens * 4 * hidden  # embeddings, their dropout, the final norm

    loss = config.resolved_loss()
    negatives = config.resolved_negatives()
    if negatives > 0:
        logits = targets * (1 + negatives) * (2 * hidden + 2)
    elif config.fused_ce and model.name != "stosa":
        logits = 2 * min(targets, chunk_rows(n_items, default_block_elements(device))) * n_items + 2 * targets * hidden
    else:
        logits = 3 * targets * n_items
    if loss == "stosa":
        logits *= 2

    parameters = (n_items + 2) * hidden * (1 if model.tie_weights else 2) + length * hidden
    parameters += model.num_layers * (4 * hidden * hidden + 2 * hidden * model.inner_size)
    weights = 4 * parameters  # values, gradients, two Adam moments

    evaluation = config.eval_batch_size * (3 * n_items + 2 * model.num_heads * length * length + 8 * length * hidden)
    return _FLOAT * (max(activations + logits, evaluation) + weights)
