"""The pieces nas/ holds for every algorithm: the relaxations of a discrete choice and the cost
model, whose analytic counts must equal what a built module measures."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec_fast.models.layers import TransformerBlock, attention_mask
from seqrec_fast.nas import cost
from seqrec_fast.nas.relaxations import TemperatureSchedule, gumbel_softmax, keyed_generator, mix, softmax


def test_softmax_weights_sum_to_one_and_sharpen_with_temperature():
    alpha = torch.tensor([[1.0, 2.0, 0.5]])
    assert torch.allclose(softmax(alpha).sum(-1), torch.ones(1))
    assert softmax(alpha, 0.1)[0, 1] > softmax(alpha, 1.0)[0, 1] > softmax(alpha, 10.0)[0, 1]
    with pytest.raises(ValueError, match="temperature"):
        softmax(alpha, 0.0)


def test_gumbel_softmax_is_a_function_of_its_generator():
    alpha = torch.randn(4, 5)
    draw = lambda: gumbel_softmax(alpha, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw(), draw())
    assert torch.allclose(draw().sum(-1), torch.ones(4))


def test_a_keyed_generator_draws_by_its_key_alone():
    draw = lambda *key: torch.rand(4, generator=keyed_generator(torch.device("cpu"), *key))
    torch.rand(3)  # the global generator plays no part
    assert torch.equal(draw(7, 0, 2, 5), draw(7, 0, 2, 5))
    assert not torch.equal(draw(7, 0, 2, 5), draw(7, 1, 2, 5)) and not torch.equal(draw(7, 0, 2, 5), draw(7, 0, 5, 2))


def test_hard_gumbel_is_one_hot_forward_with_the_soft_gradient():
    alpha = torch.randn(3, 4, requires_grad=True)
    hard = gumbel_softmax(alpha, 0.7, hard=True, generator=torch.Generator().manual_seed(1))
    soft = gumbel_softmax(alpha, 0.7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(hard.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 4).float())
    values = torch.randn(4)
    (hard * values).sum().backward()
    hard_grad = alpha.grad.clone()
    alpha.grad = None
    (soft * values).sum().backward()
    assert torch.allclose(hard_grad, alpha.grad)


def test_mix_weights_the_candidates_outputs():
    outputs = [torch.full((2, 3), float(k)) for k in range(3)]
    weights = torch.tensor([0.2, 0.3, 0.5])
    assert torch.allclose(mix(weights, outputs), torch.full((2, 3), 0.3 + 1.0))
    with pytest.raises(ValueError, match="3 weights for 2"):
        mix(weights, outputs[:2])


@pytest.mark.parametrize("kind", ["exponential", "linear"])
def test_temperature_schedule_runs_from_start_to_end(kind):
    schedule = TemperatureSchedule(start=2.0, end=0.5, steps=10, kind=kind)
    assert schedule(0) == pytest.approx(2.0) and schedule(10) == pytest.approx(0.5) and schedule(99) == pytest.approx(0.5)
    middle = math.sqrt(2.0 * 0.5) if kind == "exponential" else 1.25
    assert schedule(5) == pytest.approx(middle)
    with pytest.raises(ValueError, match="kind"):
        TemperatureSchedule(kind="cosine")


@pytest.mark.parametrize("hidden, inner, heads, length", [(16, 32, 2, 10), (64, 256, 4, 7)])
def test_transformer_block_cost_matches_the_count(hidden, inner, heads, length):
    block = TransformerBlock(hidden, heads, inner, dropout=0.0, attn_dropout=0.0).eval()
    x = torch.randn(1, length, hidden)
    mask = attention_mask(torch.ones(1, length, dtype=torch.bool), causal=True)
    assert cost.counted(block, x, mask) == cost.transformer_block(hidden, inner, length)
    assert cost.transformer(3, hidden, inner, length) == cost.transformer_block(hidden, inner, length) * 3
