"""Backbone invariants: left-to-right models never see the future, padding never changes a real
position's output, and the scaled residual starts at zero and learns."""

from __future__ import annotations

import pytest
import torch

from seqrec_fast.models import MODELS, ModelConfig, build_model
from seqrec_fast.train import config as train_config

N_ITEMS = 40
LENGTH = 12


def small_model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    options = dict(name=name, hidden_size=16, num_heads=2, num_layers=2, inner_size=32, max_len=LENGTH + 4,
                   dilations=(1, 2))
    options.update(overrides)
    return build_model(ModelConfig(**options), N_ITEMS).eval()


def left_padded(rows: list[list[int]], length: int) -> torch.Tensor:
    return torch.tensor([[0] * (length - len(r)) + r for r in rows])


def random_rows(seed: int, n: int = 3) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = [LENGTH, LENGTH - 4, 3][:n]
    return [torch.randint(1, N_ITEMS + 1, (k,), generator=generator).tolist() for k in lengths]


def test_registry_matches_the_names_the_config_accepts():
    assert sorted(MODELS) == sorted(train_config.MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(n for n, cls in MODELS.items() if cls.causal))
def test_left_to_right_models_are_causal(name):
    model = small_model(name)
    inputs = left_padded(random_rows(1), LENGTH)
    reference = model(inputs)
    for position in range(LENGTH - 1):
        changed = inputs.clone()
        real = changed[:, position] > 0
        changed[real, position] = changed[real, position] % N_ITEMS + 1  # another item
        output = model(changed)
        torch.testing.assert_close(output[:, :position], reference[:, :position], rtol=0, atol=1e-6)


def with_offsets(model: torch.nn.Module) -> torch.nn.Module:
    """Every bias and norm shift set to non-zero values, as training leaves them: zero-initialised
    offsets hide padding that leaks through a LayerNorm's bias."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return model


@pytest.mark.parametrize("offsets", [False, True], ids=["initialised", "offsets"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_padding_never_changes_real_positions(name, offsets):
    model = with_offsets(small_model(name)) if offsets else small_model(name)
    rows = random_rows(2)
    short, long = left_padded(rows, LENGTH), left_padded(rows, LENGTH + 4)
    out_short, out_long = model(short), model(long)
    for row, items in enumerate(rows):
        n = len(items)
        torch.testing.assert_close(out_long[row, -n:], out_short[row, -n:], rtol=1e-5, atol=1e-5)
    # the ranking of the next item too
    torch.testing.assert_close(model.predict(long), model.predict(short), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prediction_shapes(name):
    model = small_model(name)
    scores = model.predict(left_padded(random_rows(3), LENGTH))
    assert scores.shape == (3, N_ITEMS + 1) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", ["sasrec", "nextitnet", "stosa"])
def test_scaled_residual_starts_at_zero_and_learns(name):
    model = small_model(name, residual="scaled").train()
    scales = [p for n, p in model.named_parameters() if n.endswith("scale")]
    assert scales and all(float(s.detach()) == 0.0 for s in scales)
    model(left_padded(random_rows(4), LENGTH)).pow(2).sum().backward()
    assert any(float(s.grad.abs()) > 0 for s in scales)


def test_nextitnet_scaled_blocks_start_as_identity():
    model = small_model("nextitnet", residual="scaled", dropout=0.0)
    inputs = left_padded(random_rows(5), LENGTH)
    valid = (inputs > 0).unsqueeze(-1)
    torch.testing.assert_close(model(inputs), model.final(model.items(inputs) * valid) * valid)


def test_bert4rec_ranks_with_the_mask_token_appended_within_max_len():
    model = small_model("bert4rec", max_len=LENGTH)
    inputs = left_padded(random_rows(6), LENGTH)  # row 0 is full: its oldest item makes room
    extended = torch.cat([inputs[:, 1:], torch.full_like(inputs[:, :1], N_ITEMS + 1)], 1)
    torch.testing.assert_close(model.predict(inputs), model.score_all(model(extended)[:, -1]))


def test_sequence_longer_than_max_len_is_rejected():
    with pytest.raises(ValueError, match="max_len"):
        small_model("sasrec", max_len=4)(torch.ones(1, 6, dtype=torch.long))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("last", [1, 3, LENGTH, LENGTH + 5])
def test_forward_last_is_the_sliced_forward_with_its_gradients(name, last):
    # Transformers compute their final block at the last positions only; the values and every
    # parameter's gradient must be those of the full forward, sliced (padding rows included).
    model = small_model(name)
    inputs = left_padded(random_rows(4) + [[]], LENGTH)
    inputs[-1, -1] = 7  # a row that is all padding but its last position
    full = model(inputs)[:, -last:]
    assert full.shape[1] == min(last, LENGTH)
    weights = torch.randn(full.shape, generator=torch.Generator().manual_seed(5))
    (full * weights).sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    part = model.forward_last(inputs, last)
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-6)
    (part * weights).sum().backward()
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-4, atol=1e-6, msg=n)
