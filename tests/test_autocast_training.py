"""One optimizer step of every backbone, and of the ADT grid supernet, under CPU bf16 autocast,
through the trainer's TrainingStep: what the trainer runs on CUDA (amp), where it turns autocast
on, with fp32 weights. The loss and every gradient stay finite and the step moves the weights."""

from __future__ import annotations

import pytest
import torch

from seqrec_fast.models import MODELS, build_model
from seqrec_fast.algorithms.adt.grid_supernet import set_coordinates, to_grid_supernet
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import TrainingStep

N_ITEMS = 40
BATCH, LENGTH = 4, 10
SMALL = {"hidden_size": "16", "num_heads": "2", "inner_size": "32", "max_len": str(LENGTH), "num_layers": "2"}


def _step_module(name: str, supernet: bool) -> TrainingStep:
    config = build_config(None, {"data": "synthetic:tiny", "out": "unused", "model": name, "progress": "false",
                                 **SMALL})
    torch.manual_seed(0)
    model = build_model(config.model, N_ITEMS)
    if supernet:
        model = to_grid_supernet(model, 3)
        set_coordinates(model, [(0.3, 0.7), (1.0, 0.25)])
    return TrainingStep(model, config, log_q=None).train(), config


def _batch(config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randint(1, N_ITEMS + 1, (BATCH, LENGTH), generator=generator)
    inputs[0, :4] = 0  # a left-padded row
    targets = torch.randint(1, N_ITEMS + 1, (BATCH, LENGTH), generator=generator)
    targets[inputs == 0] = 0
    n_negatives = config.resolved_negatives()
    negatives = (torch.randint(1, N_ITEMS + 1, (BATCH, LENGTH, n_negatives), generator=generator)
                 if n_negatives else None)
    return inputs, targets, negatives


def _one_step_under_autocast(name: str, supernet: bool) -> None:
    step, config = _step_module(name, supernet)
    optimizer = torch.optim.Adam(step.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in step.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = step(*_batch(config))
    assert torch.isfinite(loss), f"{name}: loss {loss.item()}"
    loss.backward()
    grads = [p.grad for p in step.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, step.parameters()))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backbone_training_step_under_cpu_autocast(name):
    _one_step_under_autocast(name, supernet=False)


@pytest.mark.parametrize("name", ["sasrec", "bert4rec", "stosa"])
def test_adt_supernet_training_step_under_cpu_autocast(name):
    # The fused grid blocks run attention output into grid_linear: under autocast a bf16
    # activation meets fp32 grid weights there.
    _one_step_under_autocast(name, supernet=True)
