"""Losses: the fused full-softmax CE equals the unfused one in value and gradients; the sampled
losses reduce to their textbook forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqrec_fast.models import ModelConfig, build_model
from seqrec_fast.train.fused_cross_entropy import linear_cross_entropy
from seqrec_fast.train.losses import LOSSES, full_softmax_ce, generalised_bce, binary_cross_entropy, proposal_log_probabilities, sampled_softmax


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("block_elements", [1, 7 * 53, 1 << 20])  # one row per chunk, odd chunks, one chunk
def test_fused_cross_entropy_equals_unfused(with_bias, block_elements):
    generator = torch.Generator().manual_seed(1)
    n, d, v = 37, 16, 53
    hidden = torch.randn(n, d, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(v, d, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(v, generator=generator, dtype=torch.float64, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,), generator=generator)
    upstream = torch.tensor(1.7, dtype=torch.float64)

    fused = linear_cross_entropy(hidden, weight, bias, targets, block_elements=block_elements)
    fused_grads = torch.autograd.grad(fused * upstream, [t for t in (hidden, weight, bias) if t is not None])
    logits = hidden @ weight.t() + (bias if bias is not None else 0)
    plain = F.cross_entropy(logits, targets)
    plain_grads = torch.autograd.grad(plain * upstream, [t for t in (hidden, weight, bias) if t is not None])

    torch.testing.assert_close(fused.double(), plain, rtol=1e-6, atol=1e-6)  # logsumexp runs in fp32
    for got, want in zip(fused_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_fused_cross_entropy_gradcheck():
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 7, (5,), generator=generator)
    # logsumexp is accumulated in fp32, hence the loose tolerances
    assert torch.autograd.gradcheck(lambda h, w: linear_cross_entropy(h, w, None, targets, block_elements=14),
                                    (hidden, weight), eps=1e-3, atol=1e-3, rtol=1e-3)


@pytest.fixture(scope="module")
def sasrec():
    torch.manual_seed(0)
    return build_model(ModelConfig(name="sasrec", hidden_size=16, num_heads=2, max_len=8, inner_size=32), n_items=30)


def test_model_ce_excludes_padding_and_matches_unfused(sasrec):
    hidden = torch.randn(6, 16)
    targets = torch.tensor([1, 5, 30, 2, 2, 17])
    fused = full_softmax_ce(sasrec, hidden, targets, fused=True)
    unfused = full_softmax_ce(sasrec, hidden, targets, fused=False)
    logits = sasrec.score_all(hidden)[:, 1:]  # column 0 (padding) is never a class
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(unfused, F.cross_entropy(logits, targets - 1))


def test_gbce_with_full_calibration_is_bce(sasrec):
    hidden, targets = torch.randn(4, 16), torch.tensor([3, 4, 5, 6])
    negatives = torch.randint(1, 31, (4, 29))
    # t = 1 makes beta = 1: gBCE is plain BCE
    torch.testing.assert_close(generalised_bce(sasrec, hidden, targets, negatives, n_items=30, gbce_t=1.0),
                               binary_cross_entropy(sasrec, hidden, targets, negatives))


def test_sampled_softmax_logq_correction(sasrec):
    hidden, targets = torch.randn(4, 16), torch.tensor([3, 4, 5, 6])
    negatives = torch.randint(1, 31, (4, 5))
    counts = torch.arange(31).numpy()
    log_q = proposal_log_probabilities("popularity", counts)
    scores = sasrec.score_items(hidden, torch.cat([targets[:, None], negatives], 1))
    expected = F.cross_entropy(scores - log_q[torch.cat([targets[:, None], negatives], 1)], torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(sampled_softmax(sasrec, hidden, targets, negatives, log_q=log_q), expected)
    # a uniform proposal shifts every logit equally: no effect
    uniform = proposal_log_probabilities("uniform", counts)
    torch.testing.assert_close(sampled_softmax(sasrec, hidden, targets, negatives, log_q=uniform),
                               sampled_softmax(sasrec, hidden, targets, negatives))


def test_stosa_loss_is_finite_and_differentiable():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="stosa", hidden_size=16, num_heads=2, max_len=8, inner_size=32), n_items=30)
    hidden = model(torch.randint(1, 31, (3, 8))).reshape(-1, 32)
    loss = LOSSES["stosa"].fn(model, hidden, torch.randint(1, 31, (24,)), torch.randint(1, 31, (24, 2)))
    loss.backward()
    assert torch.isfinite(loss) and model.item_mean.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model_name,loss", [("sasrec", "ce"), ("sasrec", "bce"), ("bert4rec", "ce")])
def test_strided_training_step_computes_the_target_positions_only(tiny, model_name, loss):
    # With strided windows the step runs the model's final layer at the window's last `stride`
    # positions only (forward_last); the loss and its gradients must not change.
    from seqrec_fast.train.config import TrainConfig
    from seqrec_fast.train.trainer import TrainingStep

    torch.manual_seed(0)
    model = build_model(ModelConfig(name=model_name, hidden_size=16, num_heads=2, max_len=10, inner_size=32,
                                    dropout=0.0, attn_dropout=0.0), tiny.n_items).eval()
    strided = TrainConfig(model=model.config, loss=loss, window="stride", stride=3)
    assert strided.loader_stride() == 3
    loader = tiny.train_loader(batch_size=32, max_len=10, mode=model.objective, window="stride", stride=3,
                               n_negatives=strided.resolved_negatives(), seed=0)
    batch = next(iter(loader.epoch(0)))
    tensors = [torch.from_numpy(batch[k]).long() if k in batch else None for k in ("inputs", "targets", "negatives")]
    losses, grads = [], []
    for config in (strided, TrainConfig(model=model.config, loss=loss, window="sliding")):
        step = TrainingStep(model, config, log_q=None)
        assert step.target_span == config.loader_stride()
        value = step(*tensors)
        losses.append(value)
        grads.append(torch.autograd.grad(value, list(model.parameters()), allow_unused=True))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for pruned, full in zip(*grads):
        assert (pruned is None) == (full is None)
        if full is not None:
            torch.testing.assert_close(pruned, full, rtol=1e-4, atol=1e-6)
