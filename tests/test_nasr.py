"""NASR on small data: causal, padding-free ops, supernet paths and hybrids; the self-supervised
block objective; validation and test items never reach a supernet or selection batch; selection
deterministic and in eval mode; a search killed and resumed to the same result; the commands;
and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seqrec_fast.algorithms.nasr import search as nasr
from seqrec_fast.algorithms.nasr import selection
from seqrec_fast.algorithms.nasr.network import Embedded, NASRHybrid, NASRSupernet, make_op
from seqrec_fast.algorithms.nasr.options import NASRConfig
from seqrec_fast.algorithms.nasr.siamese import BlockObjective
from seqrec_fast.algorithms.nasr.space import OPS, block_paths, describe_layers, parse_layers
from seqrec_fast.cli import main
from seqrec_fast.data import from_interactions
from seqrec_fast.models import ModelConfig
from seqrec_fast.nas.search_run import SearchRun
from seqrec_fast.options import ConfigError, parse_options
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import Trainer

N_ITEMS = 40
WIDTH = 16
QUIET = ["--no-progress", "--threads", "1"]


class Killed(Exception):
    pass


def model_config(max_len: int = 20) -> ModelConfig:
    return ModelConfig(hidden_size=WIDTH, num_layers=4, max_len=max_len, dropout=0.0, attn_dropout=0.0,
                       residual="scaled", tie_weights=False, num_heads=2, inner_size=64)


def with_offsets(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initial value, as training leaves it: zero residual scales
    and zero biases would hide a leak."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module


def left_padded(items: torch.Tensor, pad: int) -> torch.Tensor:
    return torch.cat([torch.zeros(items.shape[0], pad, dtype=torch.long), items], dim=1)


def assert_causal_and_padding_free(run, max_len: int = 20) -> None:
    """``run(inputs) -> [B, L, d]``: later items never change earlier positions; padding never
    changes a real one."""
    torch.manual_seed(1)
    inputs = torch.randint(1, N_ITEMS + 1, (4, max_len))
    inputs[1, :7] = 0
    with torch.no_grad():
        hidden = run(inputs)
        for t in (2, 9, 15):
            changed = inputs.clone()
            changed[:, t + 1:] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1:].shape)
            changed[1, :7] = 0
            torch.testing.assert_close(run(changed)[:, : t + 1], hidden[:, : t + 1], rtol=1e-5, atol=1e-5)
        items = inputs[:, -8:]
        torch.testing.assert_close(run(left_padded(items, 12))[:, -8:], run(left_padded(items, 5))[:, -8:],
                                   rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- ops and networks
@pytest.mark.parametrize("name", OPS)
def test_every_op_is_causal_and_ignores_padding(name):
    torch.manual_seed(0)
    supernet = with_offsets(NASRSupernet(model_config(), N_ITEMS, layers=1)).eval()
    path = [OPS.index(name)]
    assert_causal_and_padding_free(lambda inputs: supernet(inputs, path))


def test_supernet_on_any_path_and_the_hybrid_are_causal_and_ignore_padding():
    torch.manual_seed(0)
    supernet = with_offsets(NASRSupernet(model_config(), N_ITEMS, layers=8)).eval()
    for seed in range(3):
        path = np.random.default_rng(seed).integers(0, len(OPS), 8).tolist()
        assert_causal_and_padding_free(lambda inputs: supernet(inputs, path))
    hybrid = with_offsets(NASRHybrid(model_config(), N_ITEMS, ["trm4", "tcn14", "trm8", "tcn12"])).eval()
    assert_causal_and_padding_free(hybrid)


def test_a_supernet_path_computes_the_hybrid_of_its_ops():
    torch.manual_seed(0)
    names = ["tcn12", "trm8", "trm4", "tcn14", "trm4"]
    supernet = with_offsets(NASRSupernet(model_config(), N_ITEMS, layers=len(names))).eval()
    hybrid = NASRHybrid(model_config(), N_ITEMS, names).eval()
    state = {"embedding." + k: v for k, v in supernet.embedding.state_dict().items()}
    state["embedding.items.weight"] = state["embedding.items.weight"][: N_ITEMS + 1]  # no mask token
    for layer, name in enumerate(names):
        op = supernet.layers[layer][OPS.index(name)]
        state.update({f"layers.{layer}.{k}": v for k, v in op.state_dict().items()})
    hybrid.load_state_dict({**hybrid.state_dict(), **state})
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (3, 14)), 6)
    path = [OPS.index(name) for name in names]
    torch.testing.assert_close(hybrid(inputs), supernet(inputs, path), rtol=1e-6, atol=1e-6)


def test_fresh_layers_pass_their_input_through_and_ops_have_parameter_parity():
    """With every residual scale at 0 a TCN op is the identity and a Transformer op only its two
    LayerNorms."""
    torch.manual_seed(0)
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (2, 10)), 4)
    valid = (inputs > 0).unsqueeze(-1)
    convolutions = NASRHybrid(model_config(), N_ITEMS, ["tcn12", "tcn14", "tcn12"]).eval()
    torch.testing.assert_close(convolutions(inputs), convolutions.embedding(inputs, inputs > 0) * valid,
                               rtol=0, atol=0)
    attention = NASRHybrid(model_config(), N_ITEMS, ["trm8"]).eval()
    block = attention.layers[0].block
    norms = block.feed_forward_residual.norm(block.attention_residual.norm(attention.embedding(inputs, inputs > 0)))
    torch.testing.assert_close(attention(inputs), norms * valid)
    sizes = {name: sum(p.numel() for p in make_op(name, 64, 0.1).parameters()) for name in OPS}
    assert max(sizes.values()) / min(sizes.values()) < 1.02, sizes  # about 50k each at d 64
    assert 49_000 < sizes["trm4"] < 51_000


def test_selection_enumerates_every_path_in_table_order_and_matches_separate_runs():
    torch.manual_seed(0)
    supernet = with_offsets(NASRSupernet(model_config(), N_ITEMS, layers=3)).eval()
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (2, 9)), 3)
    found = list(selection.every_path(supernet, supernet.embed(inputs), 1, 2))
    assert [path for path, _ in found] == block_paths(2)
    for path, out in found[::5]:
        torch.testing.assert_close(out.x, supernet.run(supernet.embed(inputs), 1, path).x)


def test_architectures_as_text():
    assert parse_layers("tcn12*3,trm4", 4) == ("tcn12", "tcn12", "tcn12", "trm4")
    assert describe_layers(("trm4", "trm4", "tcn14", "trm8")) == "trm4*2, tcn14, trm8"
    assert len(block_paths(4)) == 256 and block_paths(2)[:3] == [(0, 0), (0, 1), (0, 2)]
    with pytest.raises(ValueError, match="unknown NASR op 'gru'"):
        parse_layers("gru*16", 16)
    with pytest.raises(ValueError, match="3 layers given, the search has 16"):
        parse_layers("trm4*3", 16)


# ------------------------------------------------------------------------ the block objective
def views_of(inputs: torch.Tensor, count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    views = inputs.repeat(count, 1, 1)
    drop = torch.rand(views.shape, generator=generator) < 0.25
    return torch.where(drop & (views > 0), torch.full_like(views, N_ITEMS + 1), views)


def test_block_objective_trains_this_block_and_the_heads_only():
    torch.manual_seed(0)
    supernet = NASRSupernet(model_config(), N_ITEMS, layers=4).train()
    chosen = [(2, 0)]
    objective = BlockObjective(supernet, 1, 2, chosen, "light", False, ("mask",), 0.25, paths=3,
                               held_out_users=0.15).train()
    objective.paths = [(0, 1), (3, 3), (1, 2)]
    inputs = left_padded(torch.randint(1, N_ITEMS + 1, (6, 12)), 3)
    loss = objective(views_of(inputs, 6))
    assert loss.ndim == 0 and 0 <= float(loss.detach()) <= 3 * 4
    loss.backward()
    grads = {name for name, p in [*supernet.named_parameters(), *objective.named_parameters()]
             if p.grad is not None and p.grad.abs().sum() > 0}
    trained_ops = {f"layers.2.{op}." for op in (0, 3, 1)} | {f"layers.3.{op}." for op in (1, 3, 2)}
    assert grads and all(name.startswith(tuple(trained_ops) + ("projector.", "predictor."))
                         for name in grads), sorted(grads)
    assert any(name.startswith("predictor.") for name in grads)
    assert not supernet.embedding.training  # the frozen part runs in eval mode
    with pytest.raises(ValueError, match="two views per path"):
        objective(views_of(inputs, 5))


# --------------------------------------------------------------------------------- searching
def small_search(out: Path, **search) -> tuple:
    train = build_config(None, {"data": "synthetic:tiny", "out": str(out), "hidden_size": str(WIDTH), "max_len": "10",
                                "epochs": "2", "threads": "1", "seed": "3", "stride": "5", "progress": "false",
                                "checkpoint_every_steps": "1"}, default_window="stride")
    options = {"layers": 4, "blocks": 2, "paths": 2, "block_epochs": 2, "supernet_batch": 64, **search}
    return train, NASRConfig(**options)


def sentinel_dataset(n_users: int = 60):
    """Every user's validation and test items are two items no training part holds."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(n_users):
        history = [f"i{k}" for k in rng.integers(1, 30, rng.integers(8, 20))]
        for item in [*history, "VALID", "TEST"]:
            users.append(f"u{user}")
            items.append(item)
    dataset = from_interactions(users, items, np.arange(len(users)), name="sentinels")
    sentinels = {int(dataset.items[dataset.valid_pos[0]]), int(dataset.items[dataset.test_pos[0]])}
    assert all({int(dataset.items[dataset.valid_pos[u]]), int(dataset.items[dataset.test_pos[u]])} == sentinels
               for u in range(dataset.n_users))
    return dataset, sentinels


def test_validation_and_test_items_never_reach_a_supernet_or_selection_batch(tmp_path, monkeypatch):
    dataset, sentinels = sentinel_dataset()
    seen = {"supernet": [], "selection": [], "supernet_users": set()}
    forward, score, batch_tensors = BlockObjective.forward, selection.score_paths, Trainer._batch_tensors

    def recording_forward(self, views):
        seen["supernet"].append(views.clone())
        return forward(self, views)

    def recording_score(supernet, objective, layers_per_block, pairs):
        pairs = list(pairs)
        seen["selection"] += pairs
        return score(supernet, objective, layers_per_block, pairs)

    def recording_batch(self, batch):
        seen["supernet_users"].update(batch["users"].tolist())
        return batch_tensors(self, batch)

    monkeypatch.setattr(BlockObjective, "forward", recording_forward)
    monkeypatch.setattr(nasr, "score_paths", recording_score)
    monkeypatch.setattr(Trainer, "_batch_tensors", recording_batch)
    train, options = small_search(tmp_path / "run", held_out_users=0.25)
    nasr.search(train, options, dataset)
    assert seen["supernet"] and seen["selection"]
    for views in seen["supernet"] + seen["selection"]:
        assert not np.isin(views.numpy(), list(sentinels)).any()
    held_out = dataset.train_loader(batch_size=10**6, max_len=10, window="last", seed=3, held_out_users=0.25,
                                    held_out=True)
    selection_users = {u for batch in held_out.epoch(0) for u in batch["users"].tolist()}
    assert selection_users and seen["supernet_users"] and not seen["supernet_users"] & selection_users
    assert sum(pair.shape[1] for pair in seen["selection"]) // 2 == len(selection_users)  # one pair per user, per block


def test_selection_is_deterministic_and_runs_in_eval_mode(tmp_path, tiny, monkeypatch):
    modes = []
    apply = Embedded.apply

    def recording_apply(self, op):
        modes.append(op.training)
        return apply(self, op)

    train, options = small_search(tmp_path / "run")
    nasr.search(train, options, tiny)
    tables = [json.loads((tmp_path / "run" / "selection" / f"block{k}.json").read_text()) for k in range(2)]
    assert [len(t["paths"]) for t in tables] == [16, 16] and all(len(t["loss"]) == 16 for t in tables)
    assert all(t["chosen"] == t["paths"][int(np.argmin(t["loss"]))] for t in tables)

    # The proxy of the chosen hybrid is the tables' score of its paths.
    chosen = [name for table in tables for name in table["chosen"]]
    assert nasr.proxy_losses(tmp_path / "run", tiny, chosen) == pytest.approx([t["chosen_loss"] for t in tables])
    monkeypatch.setattr(Embedded, "apply", recording_apply)
    state = torch.load(tmp_path / "run" / "supernet" / "block1" / "checkpoints" / "last.pt", weights_only=False)
    search_train = nasr.load_config(nasr.SearchRun(tmp_path / "run"))[0]
    again = [nasr.select_block(nasr.SearchRun(tmp_path / f"again{i}"), search_train, options, tiny, 1,
                               [tuple(OPS.index(n) for n in tables[0]["chosen"])], state, lambda m: None)
             for i in range(2)]
    assert modes and not any(modes)
    assert again[0]["loss"] == again[1]["loss"] == tables[1]["loss"]


def result_of(out: Path) -> tuple:
    result = json.loads((out / "result.json").read_text())
    return result["architecture"]["layers"], result["fitness"]


def test_search_killed_in_a_block_and_in_selection_resumes_to_the_same_result(tmp_path, tiny, monkeypatch):
    straight = nasr.search(*small_search(tmp_path / "straight"), tiny)
    assert len(straight.architecture["layers"]) == 4 and straight.evaluations == 32
    for plot in ("layers.png", "blocks.png"):
        assert (tmp_path / "straight" / "plots" / plot).stat().st_size > 0

    out = tmp_path / "killed"
    train, options = small_search(out)
    before_batch, score = nasr.BlockCallbacks.before_batch, nasr.score_paths

    def die_in_block_two(self, epoch, index):
        if self.block == 1 and epoch == 1 and index == 1:
            raise Killed
        before_batch(self, epoch, index)

    def die_scoring(*args):
        raise Killed

    monkeypatch.setattr(nasr.BlockCallbacks, "before_batch", die_in_block_two)
    with pytest.raises(Killed):
        nasr.search(train, options, tiny)
    monkeypatch.setattr(nasr.BlockCallbacks, "before_batch", before_batch)
    monkeypatch.setattr(nasr, "score_paths", die_scoring)
    with pytest.raises(Killed):
        nasr.search(train, options, tiny, resume=True)
    monkeypatch.setattr(nasr, "score_paths", score)
    nasr.search(train, options, tiny, resume=True)
    assert result_of(out) == result_of(tmp_path / "straight")

    retrained = [nasr.retrain(run, tiny, fast_dev_run=True) for run in (out, tmp_path / "straight")]
    assert retrained[0]["test"] == retrained[1]["test"]
    assert retrained[0]["layers"] == straight.architecture["layers"]


def test_a_fixed_hybrid_skips_the_search(tmp_path, tiny):
    found = nasr.search(*small_search(tmp_path / "fixed", architecture="tcn14*2,trm8*2"), tiny)
    assert found.architecture["layers"] == ["tcn14", "tcn14", "trm8", "trm8"] and found.evaluations == 0
    retrained = nasr.retrain(tmp_path / "fixed", tiny, fast_dev_run=True)
    assert {"ndcg@20", "hr@20"} <= set(retrained["test"])


# ------------------------------------------------------------------------------- the commands
def test_search_retrain_recommend_evaluate_and_export_commands_on_the_tiny_preset(commands_on_tiny):
    found, _ = commands_on_tiny("nasr")
    assert len(found["architecture"]["layers"]) == 16


def test_the_search_command_takes_the_authors_dropout_unless_one_is_given(tmp_path, capsys):
    def dropouts(*options: str) -> tuple[float, float]:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        assert main(["search", "nasr", "--data", "synthetic:tiny", "--out", str(out), "--architecture", "tcn12*16",
                     *options, *QUIET]) == 0
        capsys.readouterr()
        model = nasr.load_config(SearchRun(out))[0].model
        return model.dropout, model.attn_dropout

    assert dropouts() == (0.1, 0.1)
    assert dropouts("--dropout", "0.3") == (0.3, 0.1)


def test_bad_ops_depths_and_held_out_shares_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown NASR op 'conv3'"):
        NASRConfig(architecture="conv3*16")
    with pytest.raises(ValueError, match="16 layers do not divide into 3 blocks"):
        NASRConfig(blocks=3)
    for value in ("0", "1", "1.5"):
        with pytest.raises(ConfigError, match="'held_out_users'"):
            parse_options(NASRConfig, {"held_out_users": value})
    with pytest.raises(ValueError, match="augmentations"):
        NASRConfig(augmentations="mask,shuffle")
    assert main(["search", "nasr", "--data", "synthetic:tiny", "--out", str(tmp_path / "a"), "--layers", "10",
                 *QUIET]) == 2
    assert "10 layers do not divide into 4 blocks" in capsys.readouterr().err
