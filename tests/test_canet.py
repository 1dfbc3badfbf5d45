"""CANet on small data: the masked full-width forward computing the sliced forward on every one of
36 routes, a route's block being a standard SASRec block with its slice of the weights, the
backbone and the router causal and blind to padding (in training too, where the router reads a
window up to its first target), argmax routing deterministic, the guide labels and the uniform
loss against hand-computed values, each route's analytic cost against a module count, a search
killed and resumed to the same result, a fixed route, the commands on the tiny preset, and the
errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrec_fast import ops
from seqrec_fast.algorithms.canet import search as canet
from seqrec_fast.algorithms.canet.backbone import CompoundBlock
from seqrec_fast.algorithms.canet.losses import RoutingLosses, log_marginals, soft_labels, uniform_loss
from seqrec_fast.algorithms.canet.network import CANet
from seqrec_fast.algorithms.canet.options import MODEL_DEFAULTS, CANetConfig
from seqrec_fast.algorithms.canet.router import RouterShape
from seqrec_fast.algorithms.canet.routing import evaluate_route, split_routes
from seqrec_fast.algorithms.canet.space import Route, RouteSpace, parse_route
from seqrec_fast.cli import main
from seqrec_fast.models import ModelConfig
from seqrec_fast.models.layers import TransformerBlock, attention_mask
from seqrec_fast.nas.cost import counted, sequence_router
from seqrec_fast.nas.search_loop import load_search_config
from seqrec_fast.nas.search_run import SearchRun
from seqrec_fast.options import ConfigError, parse_options
from seqrec_fast.train.config import build_config
from seqrec_fast.train.evaluation import evaluate_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ITEMS = 40
SPACE = RouteSpace((8, 12, 16), (8, 12, 16), (1, 2, 3, 4))  # the paper's 3 x 3 x 4 routes, narrower
ROUTER = RouterShape(width=8, heads=2, inner=16)
QUIET = ["--no-progress", "--threads", "1"]


def model_config(max_len: int = 20) -> ModelConfig:
    return ModelConfig(name="sasrec", hidden_size=16, num_layers=4, num_heads=4, inner_size=64, max_len=max_len,
                       dropout=0.0, attn_dropout=0.0, residual="scaled", tie_weights=False)


def compound(space: RouteSpace = SPACE, router: RouterShape | None = ROUTER, max_len: int = 20) -> CANet:
    return CANet(model_config(max_len), N_ITEMS, space, router)


def left_padded(items: torch.Tensor, pad: int) -> torch.Tensor:
    return torch.cat([torch.zeros(items.shape[0], pad, dtype=torch.long), items], dim=1)


def windows(rows: int, length: int = 20, seed: int = 0) -> torch.Tensor:
    """Random windows, left-padded by various amounts (one of them a single item)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, N_ITEMS + 1, (rows, length), generator=generator)
    for row in range(rows):
        inputs[row, : (row * 7) % length] = 0
    inputs[-1, :-1] = 0
    return inputs


# ---------------------------------------------------------------------------------- the model
def test_masked_forward_computes_the_sliced_forward_on_every_route(monkeypatch, with_offsets):
    torch.manual_seed(0)
    paper = CANetConfig().space()  # 64, 96, 128 x 64, 96, 128 x 2, 4, 6, 8
    # In float64: the two paths compute one function, so they agree far below float32's rounding,
    # which 8 blocks of these random weights amplify to about 1e-5 of a score.
    model = with_offsets(CANet(model_config(), N_ITEMS, paper, ROUTER)).double().eval()
    inputs = windows(6)
    ran = []
    sliced = CompoundBlock.sliced

    def recording(self, x, mask, last=False):
        ran.append((x.shape[-1], last))
        return sliced(self, x, mask, last)

    monkeypatch.setattr(CompoundBlock, "sliced", recording)
    assert len(paper) == 36 and str(paper.routes[0]) == "64x64x2" and str(paper.routes[-1]) == "128x128x8"
    with torch.no_grad():
        for index, route in enumerate(paper.routes):
            with model.on_route(index):
                ran.clear()
                routed = model.predict(inputs)
                assert ran == [(route.hidden, False)] * (route.depth - 1) + [(route.hidden, True)]
                torch.testing.assert_close(model.predict_traceable(inputs), routed, rtol=0, atol=1e-9)
                assert not model(inputs)[..., route.hidden:].any()
        many = windows(64, seed=1)  # the router's own routes: several groups in one batch
        assert len(set(model.routes(many).tolist())) > 4
        torch.testing.assert_close(model.predict_traceable(many), model.predict(many), rtol=0, atol=1e-9)


def test_grouped_training_forward_computes_the_masked_forward_and_its_gradients(with_offsets):
    """Training runs each group of rows sliced at its route's widths: the same states after every
    depth choice as the masked full-width forward, and the same gradients for the backbone and,
    through the routes' weights, the router."""
    torch.manual_seed(0)
    model = with_offsets(compound()).double()
    inputs = windows(48, seed=2)
    routes = torch.arange(48) % len(SPACE)  # every route, several groups of widths in one batch
    embedding, hidden = model.route_embedding[routes], model.route_hidden[routes]
    grouped = model.backbone.grouped(inputs, embedding, hidden)
    masked = model.backbone.masked(inputs, embedding, hidden)
    assert len(grouped) == len(masked) == len(SPACE.depths)
    for ours, reference in zip(grouped, masked):
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)
    weights = torch.randn(len(SPACE.depths), 48, 1, 1, dtype=torch.float64)

    def gradients(states):
        model.zero_grad()
        loss = sum((w * state).square().sum() for w, state in zip(weights, states))
        loss.backward()
        return {name: p.grad.clone() for name, p in model.backbone.named_parameters() if p.grad is not None}

    ours = gradients(model.backbone.grouped(inputs, embedding, hidden))
    reference = gradients(model.backbone.masked(inputs, embedding, hidden))
    assert ours.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-9, atol=1e-10, msg=name)


def test_training_forward_runs_the_grouped_path_and_keeps_the_router_gradient(with_offsets, monkeypatch):
    torch.manual_seed(0)
    model = with_offsets(compound()).double().train()
    model.generator = torch.Generator().manual_seed(0)
    calls = []
    for name in ("grouped", "masked"):
        original = getattr(model.backbone, name)
        monkeypatch.setattr(model.backbone, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    model(windows(12)).sum().backward()
    assert calls == ["grouped"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.router.parameters())
    calls.clear()
    with torch.no_grad():
        model.eval()(windows(12))
    assert calls == ["masked"]  # static shapes outside training: what the export traces


@pytest.mark.parametrize("width", [8, 12, 16])
def test_a_route_block_is_a_standard_sasrec_block_with_its_slice_of_the_weights(with_offsets, width):
    torch.manual_seed(0)
    block = with_offsets(CompoundBlock(16, 4, dropout=0.0, attn_dropout=0.0)).eval()
    standard = TransformerBlock(width, 4, 4 * width, dropout=0.0, attn_dropout=0.0, residual="scaled").eval()
    inner, heads_of = 4 * width, slice(0, width)
    with torch.no_grad():
        projections = (block.query, block.key, block.value)
        standard.attention.qkv.weight.copy_(torch.cat([p.weight[heads_of, heads_of] for p in projections]))
        standard.attention.qkv.bias.copy_(torch.cat([p.bias[heads_of] for p in projections]))
        standard.attention.out.weight.copy_(block.output.weight[:width, :width])
        standard.attention.out.bias.copy_(block.output.bias[:width])
        standard.feed_forward.net[0].weight.copy_(block.expand.weight[:inner, :width])
        standard.feed_forward.net[0].bias.copy_(block.expand.bias[:inner])
        standard.feed_forward.net[2].weight.copy_(block.contract.weight[:width, :inner])
        standard.feed_forward.net[2].bias.copy_(block.contract.bias[:width])
        for name in ("attention_residual", "feed_forward_residual"):
            ours, theirs = getattr(block, name), getattr(standard, name)
            theirs.scale.copy_(ours.scale)
            theirs.norm.weight.copy_(ours.norm.weight[:width])
            theirs.norm.bias.copy_(ours.norm.bias[:width])
        x = torch.randn(3, 9, width)
        mask = attention_mask(windows(3, 9) > 0, causal=True)
        torch.testing.assert_close(block.sliced(x, mask), standard(x, mask), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(block.sliced(x, mask, last=True), standard(x, mask, last=1), rtol=1e-5, atol=1e-5)


def assert_causal_and_padding_free(forward, inputs: torch.Tensor, times=(2, 9, 15), first_checked: int = 0) -> None:
    """Items after t never change positions ``first_checked``..t (for each of ``times``); padding
    never changes a real position and is zero."""
    hidden = forward(inputs)
    assert hidden[1, :7].abs().max() == 0
    for t in times:
        changed = inputs.clone()
        changed[:, t + 1:] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1:].shape)
        torch.testing.assert_close(forward(changed)[:, first_checked: t + 1], hidden[:, first_checked: t + 1],
                                   rtol=1e-5, atol=1e-5)
    items = inputs[:, -8:]
    torch.testing.assert_close(forward(left_padded(items, 12))[:, -8:], forward(left_padded(items, 5))[:, -8:],
                               rtol=1e-5, atol=1e-5)


def test_routes_and_the_router_are_causal_and_ignore_padding(with_offsets):
    torch.manual_seed(1)
    model = with_offsets(compound()).eval()
    inputs = torch.randint(1, N_ITEMS + 1, (4, 20))
    inputs[1, :7] = 0
    with torch.no_grad():
        for index in (0, 17, 35):
            with model.on_route(index):
                assert_causal_and_padding_free(model, inputs)
                items = inputs[:, -8:]
                torch.testing.assert_close(model.predict(left_padded(items, 12)), model.predict(left_padded(items, 5)),
                                           rtol=1e-5, atol=1e-5)
        items = inputs[:, -6:]
        torch.testing.assert_close(model.router(left_padded(items, 14)), model.router(left_padded(items, 3)),
                                   rtol=1e-5, atol=1e-5)

        # In training the route is sampled from the window without its last `training_lag` items:
        # the positions that carry targets (the last lag + 1) see every item it was chosen from.
        model.train()
        model.training_lag = 4

        def sampled(x: torch.Tensor) -> torch.Tensor:
            model.generator = torch.Generator().manual_seed(5)
            return model(x)

        first_target = 20 - 1 - model.training_lag
        assert_causal_and_padding_free(sampled, inputs, times=range(first_target, 19), first_checked=first_target)
        model.generator = torch.Generator().manual_seed(5)
        model(inputs)
        truncated = model.router(inputs[:, :-4])
        torch.testing.assert_close(model.router_logits, truncated)


def test_hard_gumbel_routes_train_the_router_and_argmax_routes_are_deterministic(with_offsets):
    torch.manual_seed(2)
    model = with_offsets(compound()).train()
    inputs = windows(16)
    model.generator = torch.Generator().manual_seed(0)
    hidden = model(inputs)
    sampled = model.router_logits.detach()
    (hidden.square().sum()).backward()
    assert model.router.logits.weight.grad.abs().sum() > 0  # the straight-through gradient
    model.eval()
    with torch.no_grad():
        argmax = model.routes(inputs)
        assert torch.equal(argmax, sampled.argmax(dim=-1)) and torch.equal(argmax, model.routes(inputs))


def test_two_evaluation_passes_give_the_same_routes_and_metrics(tiny, with_offsets):
    torch.manual_seed(3)
    train = build_config(None, {"data": "synthetic:tiny", "max_len": "20", "eval_batch_size": "64"},
                         model_defaults=MODEL_DEFAULTS)
    model = with_offsets(CANet(model_config(20), tiny.n_items, SPACE, ROUTER))
    device = torch.device("cpu")
    first = evaluate_split(model, tiny, train, "valid", device), split_routes(model, tiny, train, "valid", device)
    second = evaluate_split(model, tiny, train, "valid", device), split_routes(model, tiny, train, "valid", device)
    assert first[0] == second[0]
    for a, b in zip(first[1], second[1]):
        np.testing.assert_array_equal(a, b)
    users, routes, _ = first[1]
    assert len(users) == tiny.n_users and len(set(routes.tolist())) > 1
    forced = evaluate_route(model, tiny, train, "valid", device, 5)
    with model.on_route(5):
        assert evaluate_split(model, tiny, train, "valid", device) == forced
    assert model.forced_route is None


# ------------------------------------------------------------------------------------ the losses
def test_guide_labels_uniform_loss_and_marginals_match_hand_computed_values():
    easy, hard = soft_labels(3, 2.0)  # softmax(2 log(2^i / 2^3)) is proportional to 4^i
    torch.testing.assert_close(hard, torch.tensor([1.0, 4.0, 16.0]) / 21)
    torch.testing.assert_close(easy, torch.tensor([16.0, 4.0, 1.0]) / 21)
    easy, hard = soft_labels(4, 1.0)
    torch.testing.assert_close(hard, torch.tensor([1.0, 2.0, 4.0, 8.0]) / 15)
    assert easy[0] == hard.max() and easy.argmax() == 0

    probabilities = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
    expected = -(torch.log(torch.tensor([0.5, 0.25, 0.25])).mean() + torch.log(torch.tensor([0.2, 0.3, 0.5])).mean()) / 2
    torch.testing.assert_close(uniform_loss(probabilities.log() + 3.0), expected)  # logits up to a constant

    space = RouteSpace((8, 16), (8, 12, 16), (1, 2))
    logits = torch.randn(2, len(space))
    p = torch.softmax(logits, dim=-1)
    marginals = log_marginals(logits, space)
    for dimension, choices in enumerate(space.choices):
        for c in range(len(choices)):
            by_hand = sum(p[:, r] for r in range(len(space)) if space.choice_indices(r)[dimension] == c)
            torch.testing.assert_close(marginals[dimension][:, c].exp(), by_hand)

    model = compound(space)
    losses = RoutingLosses(model, 0.01, 0.01, guide_k=3, filter_history=True)
    per_window = losses.guide_loss(logits, torch.tensor([True, False]))
    labels = [soft_labels(2, 2.0), soft_labels(3, 2.0), soft_labels(2, 1.0)]
    for row, kind in ((0, 0), (1, 1)):  # an easy window, a hard one
        by_hand = -sum((pair[kind] * marginal[row]).sum() for pair, marginal in zip(labels, marginals))
        torch.testing.assert_close(per_window[row], by_hand)


def test_a_window_is_easy_when_the_smallest_route_ranks_its_target_in_the_top_k(with_offsets):
    torch.manual_seed(4)
    model = with_offsets(compound()).train()
    inputs = windows(12)
    targets = torch.randint(1, N_ITEMS + 1, (12,))
    with torch.no_grad(), model.on_route(0):
        scores = model.eval().predict(inputs)
    model.train()
    for k in (1, 5, 20):
        hits = RoutingLosses(model, 0.0, 0.0, guide_k=k, filter_history=True).smallest_route_hits(inputs, targets)
        assert model.training  # judged without dropout, then back to training
        for row in range(12):
            others = set(inputs[row].tolist()) - {0, int(targets[row])}
            candidates = [item for item in range(1, N_ITEMS + 1) if item not in others]
            higher = sum(1 for item in candidates if scores[row, item] >= scores[row, targets[row]])
            assert bool(hits[row]) == (higher <= k)


# -------------------------------------------------------------------------------------- the cost
@pytest.mark.parametrize("index", [0, 7, 22, 35])
def test_a_route_costs_what_a_module_count_finds_and_a_small_route_multiplies_less(with_offsets, index):
    torch.manual_seed(5)
    model = with_offsets(compound(max_len=16)).eval()
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (1, 11)), 5)
    route = SPACE.routes[index]
    with ops.reference_ops():  # torch's FLOP counter sees aten matrix products
        with model.on_route(index):
            measured = counted(model, inputs, method="predict")
        with model.on_route(len(SPACE) - 1):
            largest = counted(model, inputs, method="predict")
        router = counted(model.router, inputs)
        alone = CANet(model_config(16), N_ITEMS, RouteSpace((route.embedding,), (route.hidden,), (route.depth,)), None)
        static = counted(alone.eval(), inputs, method="predict")
    cost = SPACE.cost(index, N_ITEMS, 16)
    assert measured.multiply_adds == cost.multiply_adds and static == cost  # a model of that route alone
    assert router == sequence_router(ROUTER.width, ROUTER.inner, len(SPACE), N_ITEMS, 16)
    if index < len(SPACE) - 1:
        assert measured.multiply_adds < largest.multiply_adds


def test_routes_as_text_and_indices():
    assert parse_route(" 64X96x4 ") == Route(64, 96, 4) and str(Route(64, 96, 4)) == "64x96x4"
    paper = CANetConfig().space()
    assert len(paper) == 36 and paper.index(Route(64, 64, 2)) == 0 and paper.index(Route(128, 128, 8)) == 35
    assert paper.routes[paper.index(Route(96, 128, 6))] == Route(96, 128, 6)
    assert paper.choice_indices(paper.index(Route(96, 128, 6))) == (1, 2, 2)


# ------------------------------------------------------------------------------------- the search
def small_search(out: Path, **search) -> tuple:
    train = build_config(None, {"data": "synthetic:tiny", "out": str(out), "max_len": "10", "dropout": "0.1",
                                "epochs": "2", "threads": "1", "seed": "3", "progress": "false",
                                "checkpoint_every_steps": "1"},
                         default_window="stride", model_defaults=MODEL_DEFAULTS)
    options = {"embedding_choices": (8, 16), "hidden_choices": (8, 16), "depth_choices": (1, 2), "router_width": 8,
               "router_heads": 2, "router_inner": 16, **search}
    return train, CANetConfig(**options)


def stored(out: Path) -> tuple:
    """The stored result and per-epoch log (easy share, routing losses, validation routes) but the
    measured times."""
    result = json.loads((out / "result.json").read_text())
    del result["architecture"]["scoring_ms"], result["search_s"]
    epochs = [json.loads(line) for line in (out / "supernet" / "metrics.jsonl").read_text().splitlines()]
    for epoch in epochs:
        # The trainer's mean training loss of an epoch covers the batches since a resume only.
        del epoch["elapsed_s"], epoch["train_loss"]
    return result, epochs


def test_search_killed_in_training_and_in_scoring_resumes_to_the_same_result(tmp_path, tiny, kill):
    straight = canet.search(*small_search(tmp_path / "straight"), tiny)
    found = straight.architecture
    assert len(found["routes"]) == 8 and straight.evaluations == 8 and {"ndcg@10", "hr@10"} <= set(straight.test)
    assert straight.fitness == found["valid"]["ndcg@10"]
    _, epochs = stored(tmp_path / "straight")
    assert len(epochs) == 2 and all(0 <= epoch["easy_fraction"] <= 1 and len(epoch["valid_route_counts"]) == 8
                                    for epoch in epochs)
    for plot in ("routes.png", "routing.png", "static_routes.png"):
        assert (tmp_path / "straight" / "plots" / plot).stat().st_size > 0
    routes = np.load(tmp_path / "straight" / "test_routes.npz")
    ranks = np.load(tmp_path / "straight" / "supernet" / "test_ranks.npz")
    np.testing.assert_array_equal(routes["users"], ranks["users"])  # per-user routes beside per-user ranks
    assert np.bincount(routes["routes"], minlength=8).tolist() == found["test_routing"]["route_counts"]

    out = tmp_path / "killed"
    train, options = small_search(out)

    def search(resume: bool):
        return canet.search(train, options, tiny, resume=resume)

    kill(search, canet.JointTraining, "before_batch", at=(1, 3), resume=False)
    kill(search, canet, "score_routes", resume=True)
    resumed = search(resume=True)
    assert stored(out) == stored(tmp_path / "straight") and resumed.test == straight.test


def test_a_fixed_route_trains_that_route_alone(tmp_path, tiny):
    fixed = canet.search(*small_search(tmp_path / "fixed", route="16x8x2"), tiny)
    found = fixed.architecture
    assert found["router"] is None and found["space"] == {"embedding": [16], "hidden": [8], "depth": [2]}
    assert [row["route"] for row in found["routes"]] == ["16x8x2"] and found["test_routing"]["route_counts"] == [300]
    _, train, _ = load_search_config(SearchRun(tmp_path / "fixed"))
    model = canet.build_canet(canet.derive(fixed, train), tiny.n_items)
    assert model.router is None and model.backbone.items.weight.shape[1] == 16 and len(model.backbone.blocks) == 2
    assert found["params"] == sum(p.numel() for p in model.parameters()) == found["routes"][0]["params"]
    epochs = [json.loads(line) for line in (tmp_path / "fixed" / "supernet" / "metrics.jsonl").read_text().splitlines()]
    assert not any("easy_fraction" in epoch for epoch in epochs)  # no router, no routing losses


# ------------------------------------------------------------------------------------ the commands
def test_search_recommend_evaluate_and_export_commands_on_the_tiny_preset(commands_on_tiny):
    found, card = commands_on_tiny("canet", "--max-len", "20")
    assert len(found["architecture"]["routes"]) == 36 and {"ndcg@10", "hr@10"} <= set(found["test"])
    assert card["model"]["algorithm"] == "canet" and card["model"]["searched"]["router"]["width"] == 32


def test_bad_routes_widths_depths_and_weights_are_refused(tmp_path, capsys):
    for key, value, expected in (("route", "64x64", "expected EXHXD"), ("route", "64xax2", "expected EXHXD"),
                                 ("route", "64x64x3", "depth 3 is not one of the depth choices"),
                                 ("route", "80x64x2", "embedding 80 is not one of"),
                                 ("embedding_choices", "128,64", "ascending order, each once"),
                                 ("hidden_choices", "64,64", "ascending order, each once"),
                                 ("depth_choices", "0,2", "positive integers"),
                                 ("uniform_weight", "-0.01", "'uniform_weight': expected a non-negative number"),
                                 ("guide_weight", "-1", "'guide_weight': expected a non-negative number"),
                                 ("guide_k", "0", "'guide_k': expected a positive integer"),
                                 ("temperature", "0", "'temperature': expected a number > 0"),
                                 ("router_width", "30", "router_width 30 is not a multiple of router_heads 4")):
        with pytest.raises(ConfigError, match=expected):
            parse_options(CANetConfig, {key: value})

    def refused(*args: str) -> str:
        assert main(["search", "canet", "--data", "synthetic:tiny", "--out", str(tmp_path / "run"), *args, *QUIET]) == 2
        return capsys.readouterr().err

    assert "hidden_choices: 90 is not a multiple of the 4 heads" in refused("--hidden-choices", "64,90")
    assert "depth_choices: 10 exceeds the backbone's 8 layers (num_layers)" in refused("--depth-choices", "2,10")
    assert "the backbone must be sasrec, got gru4rec" in refused("--backbone", "gru4rec")
    assert "strided windows" in refused("--window", "sliding")
    assert "config key 'uniform_weight'" in refused("--uniform-weight", "-1")
    assert not (tmp_path / "run").exists()
