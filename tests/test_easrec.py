"""EASRec on small data: the elastic model causal and padding-free (supernet under soft weights,
derived models), the supernet under one-hot weights computing each of the 12 derived models with
its slice of the weights, the analytic cost against a module count, the temperature and the FLOPs
penalty, architecture steps on held-out batches only, a search killed and resumed to the same
result, the commands on the tiny preset, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from seqrec_fast import ops
from seqrec_fast.algorithms.easrec import search as easrec
from seqrec_fast.algorithms.easrec.network import ElasticSASRec
from seqrec_fast.algorithms.easrec.options import EASRecConfig
from seqrec_fast.algorithms.easrec.space import Space, architecture_cost, most_probable, parse_architecture
from seqrec_fast.cli import main
from seqrec_fast.models import ModelConfig
from seqrec_fast.nas.cost import counted
from seqrec_fast.ops import reference
from seqrec_fast.options import ConfigError, parse_options
from seqrec_fast.train.config import build_config

N_ITEMS = 40
QUIET = ["--no-progress", "--threads", "1"]
SPACE = Space((1.0, 0.5, 0.25), hidden=32, inner=64, layers=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_config(max_len: int = 20) -> ModelConfig:
    return ModelConfig(name="sasrec", hidden_size=SPACE.hidden, inner_size=SPACE.inner, num_layers=SPACE.layers,
                       num_heads=4, max_len=max_len, dropout=0.0, attn_dropout=0.0)


def supernet(gates: str = "two") -> ElasticSASRec:
    return easrec.supernet(model_config(), N_ITEMS, SPACE, gates, None)


def derived(i: int, depth: int, gates: str = "two", max_len: int = 20) -> ElasticSASRec:
    return ElasticSASRec(easrec.derived_config(model_config(max_len), SPACE, i, depth), N_ITEMS, gates)


def left_padded(items: torch.Tensor, pad: int) -> torch.Tensor:
    return torch.cat([torch.zeros(items.shape[0], pad, dtype=torch.long), items], dim=1)


def choose(model: ElasticSASRec, i: int, depth: int) -> None:
    """alpha and beta that make (i, depth) the most probable architecture."""
    with torch.no_grad():
        model.alpha.copy_(torch.nn.functional.one_hot(torch.tensor(i), len(SPACE.keep)).float())
        model.beta.copy_(torch.nn.functional.one_hot(torch.tensor(depth - 1), SPACE.layers).float())


# ---------------------------------------------------------------------------------- the model
def assert_causal_and_padding_free(model: torch.nn.Module) -> None:
    """Later items never change earlier positions; padding never changes a real one and is zero."""
    torch.manual_seed(1)
    inputs = torch.randint(1, N_ITEMS + 1, (4, 20))
    inputs[1, :7] = 0
    with torch.no_grad():
        hidden = model(inputs)
        assert hidden[1, :7].abs().max() == 0
        for t in (2, 9, 15):
            changed = inputs.clone()
            changed[:, t + 1:] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1:].shape)
            torch.testing.assert_close(model(changed)[:, : t + 1], hidden[:, : t + 1], rtol=1e-5, atol=1e-5)
        items = inputs[:, -8:]
        torch.testing.assert_close(model(left_padded(items, 12))[:, -8:], model(left_padded(items, 5))[:, -8:],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gates", ["two", "one", "none"])
def test_supernet_under_soft_weights_and_derived_models_are_causal_and_ignore_padding(gates, with_offsets):
    torch.manual_seed(0)
    model = with_offsets(supernet(gates)).train()  # dropout 0: training differs only by the sample
    p, q = model.sample(1.0, torch.Generator().manual_seed(2))
    assert bool((p > 0).all()) and bool((q > 0).all())  # every width and depth runs and mixes
    assert_causal_and_padding_free(model)
    for i, depth in [(0, 4), (2, 1), (1, 3)]:
        assert_causal_and_padding_free(with_offsets(derived(i, depth, gates), seed=i).eval())


def test_one_hot_supernet_computes_each_derived_model_with_its_slice_of_the_weights(monkeypatch, with_offsets):
    torch.manual_seed(0)
    model = with_offsets(supernet()).eval()
    state = model.state_dict()
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (3, 14)), 6)
    inputs[1, :10] = 0
    ran = []
    layer_outputs = ElasticSASRec.layer_outputs

    def recording(self, inputs, padding, candidate, depth):
        ran.append((candidate, depth))
        return layer_outputs(self, inputs, padding, candidate, depth)

    monkeypatch.setattr(ElasticSASRec, "layer_outputs", recording)
    assert len(SPACE.architectures) == 12
    for i, depth in SPACE.architectures:
        choose(model, i, depth)
        small = derived(i, depth).eval()
        small.load_state_dict(easrec.inherited_weights(state, small))
        ran.clear()
        with torch.no_grad():
            mixed = model(inputs)
            assert ran == [(i, depth)]  # one width, no layer past the depth
            width = SPACE.widths[i]
            # Sliced and whole matrices sum in different orders (the BLAS kernel decides), so
            # values agree to float32 rounding; a wrong slice is off by far more.
            torch.testing.assert_close(mixed[..., :width], small(inputs), rtol=0, atol=1e-4)
            assert not mixed[..., width:].any()
            torch.testing.assert_close(model.predict(inputs), small.predict(inputs), rtol=0, atol=1e-4)


def test_architecture_text_space_and_most_probable_within_a_budget():
    assert str(parse_architecture(" 0.5X2 ")) == "0.5x2" and SPACE.index(parse_architecture("0.25x3")) == (2, 3)
    assert SPACE.widths == (32, 16, 8) and SPACE.inners == (64, 32, 16)
    assert most_probable([0.2, 0.5, 0.3], [0.1, 0.6, 0.3]) == (1, 2)
    allowed = [[False] * 4, [True, False, False, False], [True] * 4]
    assert most_probable([0.2, 0.5, 0.3], [0.1, 0.6, 0.2, 0.1], allowed) == (2, 2)
    model = supernet()
    with torch.no_grad():
        model.alpha.copy_(torch.tensor([0.2, 0.5, 0.3]).log())
        model.beta.copy_(torch.tensor([0.1, 0.6, 0.2, 0.1]).log())
    assert model.chosen() == (1, 2)
    model.allowed = allowed
    assert model.chosen() == (2, 2)


# ----------------------------------------------------------------------------------- the cost
def recurrent_linear_attention(q, k, v, key_padding_mask=None, causal=True, scale=None):
    """Causal linear attention as its kernel runs it: per head a d x dv state, each key and value
    added to it (an outer product), each query reading it."""
    assert causal
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    pq, pk = reference.feature_map(q), reference.feature_map(k)
    if key_padding_mask is not None:
        pk = pk.masked_fill(key_padding_mask[:, None, :, None], 0.0)
    states = (pk.unsqueeze(-1) @ v.unsqueeze(-2)).cumsum(dim=2)  # [B, H, L, d, dv]
    return scale * (pq.unsqueeze(-2) @ states).squeeze(-2)


@pytest.mark.parametrize("i, depth, gates", [(0, 2, "two"), (1, 3, "one"), (2, 1, "none"), (2, 4, "two")])
def test_a_derived_model_costs_what_a_module_count_finds(monkeypatch, with_offsets, i, depth, gates):
    torch.manual_seed(0)
    model = with_offsets(derived(i, depth, gates, max_len=16)).eval()
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (2, 11)), 5)
    q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
    padding = inputs == 0
    torch.testing.assert_close(recurrent_linear_attention(q, k, v, padding), ops.linear_attention(q, k, v, padding),
                               rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(reference, "linear_attention", recurrent_linear_attention)
    with ops.reference_ops():  # torch's FLOP counter sees aten matrix products
        measured = counted(model, inputs[:1], method="predict")
    assert architecture_cost(SPACE.widths[i], SPACE.inners[i], depth, gates, N_ITEMS, 16) == measured


def test_temperature_and_flops_penalty_follow_the_paper():
    costs = easrec.candidate_costs(SPACE, "two", N_ITEMS, 20)
    callbacks = easrec.SearchCallbacks(EASRecConfig(), SPACE, costs, None, 0)
    model = callbacks.build_model(SimpleNamespace(model=model_config()), N_ITEMS)
    callbacks.schedule(epochs=4, steps_per_epoch=50)
    assert [callbacks.temperature(t) for t in (0, 100, 200, 500)] == pytest.approx([1.0, 0.505, 0.01, 0.01])
    paper = easrec.SearchCallbacks(EASRecConfig(temperature="paper"), SPACE, costs, None, 0)
    paper.schedule(epochs=4, steps_per_epoch=50)
    assert [paper.temperature(t) for t in (0, 10_000, 30_000)] == pytest.approx([1.0, 0.5, 0.01])

    choose(model, 0, 3)  # L_t = 3 of L = 4
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.2, 0.3, 0.4])
    macs = torch.tensor([[float(costs[(i, depth)].multiply_adds) for depth in range(1, 5)] for i in range(3)])
    assert torch.equal(callbacks.macs, macs) and macs[0, 3] == macs.max()
    expected = sum(p[i] * q[j] * macs[i, j] for i in range(3) for j in range(4)) / macs[0, 3]
    assert float(callbacks.penalty(p, q)) == pytest.approx(0.1 * 3 / 4 * float(expected), rel=1e-6)
    budget = int(macs[1, 1])
    within = easrec.SearchCallbacks(EASRecConfig(flops_budget=budget, flops_lambda=2.0), SPACE, costs, None, 0)
    expected_macs = float((p[:, None] * q[None, :] * macs).sum())
    assert expected_macs > budget
    assert float(within.penalty(p, q)) == pytest.approx(2.0 * (expected_macs / budget - 1), rel=1e-6)
    assert float(within.penalty(torch.tensor([0.0, 0.0, 1.0]), q)) == 0.0  # the narrowest is within it


# --------------------------------------------------------------------------------- the search
def small_search(out: Path, **search) -> tuple:
    train = build_config(None, {"data": "synthetic:tiny", "out": str(out), "hidden_size": "16", "inner_size": "32",
                                "max_len": "10", "dropout": "0.2", "epochs": "2", "threads": "1", "seed": "3",
                                "progress": "false", "checkpoint_every_steps": "1"}, default_window="stride")
    return train, EASRecConfig(**{"search_epochs": 2, "architecture_every": 3, **search})


def test_architecture_steps_read_held_out_users_and_weight_steps_the_others(tmp_path, tiny, stepped_batches):
    train, options = small_search(tmp_path / "run", held_out_users=0.2, search_epochs=1)
    easrec.search(train, options, tiny)

    held_out_loader = tiny.train_loader(batch_size=256, max_len=10, window="stride", stride=5, seed=3,
                                        held_out_users=0.2, held_out=True)
    held_out = {u for batch in held_out_loader.epoch(0) for u in batch["users"].tolist()}
    stepped_batches.assert_architecture_steps_on(held_out, ["alpha", "beta"])
    search = stepped_batches.trainers[-1].model
    assert bool(search.alpha.detach().any()) and bool(search.beta.detach().any())  # stepped from the uniform start
    supernet_run = tmp_path / "run" / "supernet"
    assert "test" not in json.loads((supernet_run / "result.json").read_text())
    assert not (supernet_run / "test_ranks.npz").exists()  # only the retraining reads the test split


def test_a_huge_lambda_derives_the_cheapest_architecture_and_a_budget_is_kept(tmp_path, tiny):
    cheap = easrec.search(*small_search(tmp_path / "cheap", flops_lambda=1000.0, search_epochs=1), tiny)
    assert cheap.architecture["architecture"] == "0.25x1"
    budget = cheap.architecture["candidates"][5]["multiply_adds"]  # 0.5x2
    kept = easrec.search(*small_search(tmp_path / "budget", flops_budget=budget, search_epochs=1), tiny)
    assert kept.architecture["multiply_adds"] <= budget


def result_of(out: Path) -> tuple:
    """The stored result but the measured times."""
    result = json.loads((out / "result.json").read_text())
    found = result["architecture"]
    del found["scoring_ms"]
    for row in found["candidates"]:
        del row["scoring_ms"]
    return found, result["fitness"]


def test_search_killed_in_the_supernet_and_in_scoring_resumes_to_the_same_result(tmp_path, tiny, kill):
    straight = easrec.search(*small_search(tmp_path / "straight"), tiny)
    found = straight.architecture
    assert len(found["candidates"]) == 12 and straight.evaluations == 12
    assert straight.fitness == found["candidates"][SPACE.architectures.index(
        SPACE.index(parse_architecture(found["architecture"])))]["valid"]["ndcg@10"]
    for plot in ("architecture.png", "pareto.png"):
        assert (tmp_path / "straight" / "plots" / plot).stat().st_size > 0
    metrics = (tmp_path / "straight" / "supernet" / "metrics.jsonl").read_text()
    records = [json.loads(line) for line in metrics.splitlines()]
    assert all({"alpha", "beta", "architecture", "multiply_adds", "temperature"} <= set(r) for r in records)

    out = tmp_path / "killed"
    train, options = small_search(out)

    def search(resume: bool):
        return easrec.search(train, options, tiny, resume=resume)

    kill(search, easrec.SearchCallbacks, "before_batch", at=(1, 1), resume=False)
    kill(search, easrec, "score_candidates", resume=True)
    search(resume=True)
    assert result_of(out) == result_of(tmp_path / "straight")

    retrained = [easrec.retrain(run, tiny, fast_dev_run=True) for run in (out, tmp_path / "straight")]
    assert retrained[0]["test"] == retrained[1]["test"]
    assert retrained[0]["architecture"]["depth"] == found["depth"]


def test_retraining_inherits_the_supernet_slice_or_starts_from_scratch(tmp_path, tiny):
    run = tmp_path / "run"
    found = easrec.search(*small_search(run, search_epochs=1), tiny)
    state = torch.load(run / found.supernet_checkpoint, weights_only=True)["model"]
    spec = easrec.derive(found, easrec.load_config(easrec.SearchRun(run))[0])
    inherited = easrec.RetrainCallbacks(spec, state).build_model(None, tiny.n_items)
    scratch = easrec.RetrainCallbacks(spec, None).build_model(None, tiny.n_items)
    width = found.architecture["width"]
    assert torch.equal(inherited.items.weight, state["items.weight"][:, :width])
    assert not torch.equal(scratch.items.weight, inherited.items.weight)
    assert len(inherited.layers) == found.architecture["depth"]


def test_a_fixed_architecture_skips_the_search_and_trains_from_scratch(tmp_path, tiny):
    fixed = easrec.search(*small_search(tmp_path / "fixed", architecture="0.5x2"), tiny)
    found = fixed.architecture
    assert (found["architecture"], found["width"], found["inner"], found["depth"]) == ("0.5x2", 8, 16, 2)
    assert fixed.evaluations == 0 and fixed.supernet_checkpoint == "" and not (tmp_path / "fixed" / "supernet").exists()
    assert found["multiply_adds"] == architecture_cost(8, 16, 2, "two", tiny.n_items, 10).multiply_adds
    retrained = easrec.retrain(tmp_path / "fixed", tiny, fast_dev_run=True)
    assert {"ndcg@10", "hr@10"} <= set(retrained["test"])


# ------------------------------------------------------------------------------- the commands
def test_search_retrain_recommend_evaluate_and_export_commands_on_the_tiny_preset(commands_on_tiny, tmp_path):
    found, card = commands_on_tiny("easrec")
    assert len(found["architecture"]["candidates"]) == 12
    assert yaml.safe_load((tmp_path / "search" / "config.yaml").read_text())["train"]["window"] == "sliding"
    assert card["model"]["model"]["hidden_size"] == found["architecture"]["width"]  # the derived model, not the supernet


def test_bad_widths_depths_gates_architectures_and_budgets_are_refused(tmp_path, tiny, capsys):
    for key, value, expected in (("keep", "1,1.5", "'keep'"), ("keep", "0,0.5", "'keep'"), ("layers", "0", "'layers'"),
                                 ("gates", "three", "'gates'"), ("keep", "1,0.5,1", "each fraction once"),
                                 ("architecture", "half", "KEEPxDEPTH"), ("architecture", "0.5x0", "depth must be"),
                                 ("architecture", "0.3x2", "keep 0.3 is not one"),
                                 ("architecture", "0.5x5", "depth 5 exceeds")):
        with pytest.raises(ConfigError, match=expected):
            parse_options(EASRecConfig, {key: value})
    with pytest.raises(ValueError, match="keep 0.6 of hidden_size 16 gives width 10, which the 4 heads do not divide"):
        easrec.search(*small_search(tmp_path / "a", keep=(1.0, 0.6)), tiny)
    with pytest.raises(ValueError, match="flops_budget 1,000 multiply-adds is below the smallest architecture's"):
        easrec.search(*small_search(tmp_path / "b", flops_budget=1000), tiny)
    assert main(["search", "easrec", "--data", "synthetic:tiny", "--out", str(tmp_path / "c"), "--backbone",
                 "gru4rec", *QUIET]) == 2
    assert "the backbone must be sasrec, got gru4rec" in capsys.readouterr().err
    assert main(["search", "easrec", "--data", "synthetic:tiny", "--out", str(tmp_path / "d"), "--keep", "1,0.3",
                 *QUIET]) == 2
    assert "keep 0.3 of hidden_size 64 gives width 19" in capsys.readouterr().err
