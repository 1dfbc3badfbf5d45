"""ADT end to end on the tiny preset: the search space, the grid supernet, a search that is
killed (in the warm-up, then in the evolution) and resumed to the same result, retraining, and
the errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from seqrec_fast.algorithms.adt import search as adt
from seqrec_fast.algorithms.adt.grid_supernet import CopiedGridBlock, FusedTransformerGridBlock, set_coordinates, to_grid_supernet
from seqrec_fast.algorithms.adt.options import ADTConfig
from seqrec_fast.algorithms.adt.space import ADTSpace
from seqrec_fast.algorithms.adt.weighted_losses import RandomCandidates
from seqrec_fast.models import ModelConfig, build_model
from seqrec_fast.nas.search_run import SearchRun
from seqrec_fast.options import parse_options
from seqrec_fast.train.config import build_config

# 2,560 targets: about 256 of the search's disjoint windows of 10 per batch.
SMALL_MODEL = {"hidden_size": "16", "num_heads": "2", "inner_size": "32", "max_len": "10", "batch_size": "2560"}


def small_search(out, backbone="sasrec", **search) -> tuple:
    train = build_config(None, {"data": "synthetic:tiny", "out": str(out), "model": backbone, "seed": "3",
                                "progress": "false", "checkpoint_every_steps": "1", **SMALL_MODEL},
                         default_window="sliding")  # as `seqrec-fast search adt` does
    options = ADTConfig(**{"warmup_epochs": 2, "rounds": 2, "population": 4, "n_crossover": 1, "n_mutation": 1,
                           "reconstruction_grid": (0.0, 1e-3, 1e-2), "independence_grid": (0.0, 1e-3, 2e-3),
                           **search})
    return train, options


# ------------------------------------------------------------------------------------- space
def test_candidate_maps_to_layer_coordinates_and_weights_in_paper_order():
    space = ADTSpace.build(2, (0.0, 1.0, 3.0), (0.0, 2.0, 4.0))
    candidate = [0.25, 1.0, 0.75, 0.0]  # [c_rec^1, c_ind^1, c_rec^2, c_ind^2]
    assert space.coordinates(candidate) == [(0.25, 1.0), (0.75, 0.0)]
    weights = space.weights(candidate)
    assert weights.reconstruction == (0.5, 2.0)  # piecewise linear between grid values
    assert weights.independence == (4.0, 0.0)


@pytest.mark.parametrize("candidate", [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 1.5], [0.1, float("nan"), 0.3, 0.4]])
def test_bad_candidates_are_refused(candidate):
    with pytest.raises(ValueError, match="candidate|coordinate"):
        ADTSpace.build(2).weights(candidate)


def test_grids_must_increase_and_have_one_size():
    with pytest.raises(ValueError, match="reconstruction_grid.*strictly increasing"):
        ADTConfig(reconstruction_grid=(0.0, 1e-3, 1e-4)).space(2)
    with pytest.raises(ValueError, match="same M"):
        ADTConfig(independence_grid=(0.0, 1e-3)).space(2)
    with pytest.raises(ValueError, match="config key 'rounds': expected an integer"):
        parse_options(ADTConfig, {"rounds": "many"})
    assert parse_options(ADTConfig, {"reconstruction_grid": "0,0.1,0.2"}).reconstruction_grid == (0.0, 0.1, 0.2)


# ---------------------------------------------------------------------------------- supernet
@pytest.mark.parametrize("backbone, block_type", [("sasrec", FusedTransformerGridBlock),
                                                  ("bert4rec", FusedTransformerGridBlock),
                                                  ("stosa", CopiedGridBlock)])
def test_supernet_is_the_backbone_with_grid_blocks(backbone, block_type):
    model = to_grid_supernet(build_model(ModelConfig(name=backbone, hidden_size=16, num_heads=2, num_layers=2, max_len=8), 20), 3)
    blocks = model.encoder.blocks if hasattr(model, "encoder") else model.blocks
    assert all(isinstance(b, block_type) for b in blocks)
    set_coordinates(model, [(0.2, 0.9), (1.0, 0.5)])
    inputs = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])
    model(inputs).sum().backward()
    with pytest.raises(ValueError, match="coordinate"):
        set_coordinates(model, [(0.2, 1.2), (0.0, 0.0)])


@pytest.mark.parametrize("point", [(0, 0), (1, 2), (2, 2)])
def test_fused_grid_block_at_a_grid_point_is_the_backbone_block_with_those_weights(point):
    """The supernet's candidate is the backbone's own layer (same structure, norms, masking),
    so that a searched candidate means what retraining the backbone means."""
    from seqrec_fast.models.layers import TransformerBlock, attention_mask

    torch.manual_seed(0)
    block = TransformerBlock(16, 2, 32, dropout=0.3, attn_dropout=0.2)
    grid = FusedTransformerGridBlock(block, grid_size=3, causal=True)
    i, j = point
    layer = grid.layer
    with torch.no_grad():
        for target, source in ((layer.qkv, block.attention.qkv), (layer.attn_out, block.attention.out),
                               (layer.ff_in, block.feed_forward.net[0]), (layer.ff_out, block.feed_forward.net[2])):
            target.weight[i, j] = source.weight
            target.bias[i, j] = source.bias
        for target, source in ((layer.norm_attn, block.attention_residual.norm),
                               (layer.norm_ff, block.feed_forward_residual.norm)):
            target.weight[i * 3 + j] = source.weight
            target.bias[i * 3 + j] = source.bias
    assert layer.attn_dropout.p == 0.2 and layer.inner_dropout.p == 0.0 and layer.dropout.p == 0.3
    grid.set_coordinates((i / 2, j / 2))
    block.eval(), grid.eval()
    x = torch.randn(3, 7, 16)
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[0, :4] = False  # a left-padded row
    mask = attention_mask(valid, causal=True)
    torch.testing.assert_close(grid(x, mask)[valid], block(x, mask)[valid], rtol=1e-5, atol=1e-5)


def test_copied_grid_block_at_a_grid_point_is_that_candidate_and_only_corners_learn():
    model = to_grid_supernet(build_model(ModelConfig(name="stosa", hidden_size=8, num_heads=2, max_len=6,
                                                     num_layers=1), 10), 3)
    model.eval()
    block = model.blocks[0]
    set_coordinates(model, [(0.5, 1.0)])  # grid point (1, 2) -> flat index 5
    mean, cov = torch.randn(2, 6, 8), torch.rand(2, 6, 8) + 0.1
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    torch.testing.assert_close(block(mean, cov, mask)[0], block.candidates[5](mean, cov, mask)[0])
    set_coordinates(model, [(0.25, 0.75)])  # corners (0,1), (0,2), (1,1), (1,2)
    sum(t.sum() for t in block(mean, cov, mask)).backward()
    learned = {i for i, c in enumerate(block.candidates)
               if any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.parameters())}
    assert learned == {1, 2, 4, 5}


# ------------------------------------------------------------------------------ search, resume
class Killed(Exception):
    pass


def result_of(out):
    result = json.loads((out / "result.json").read_text())
    return result["candidate"], result["fitness"], result["architecture"], result["evaluations"]


def test_search_killed_in_warmup_and_evolution_resumes_to_the_same_result(tmp_path, tiny, monkeypatch):
    train, options = small_search(tmp_path / "straight")
    straight = adt.search(train, options, tiny)
    assert straight.evaluations >= options.population
    run = SearchRun(tmp_path / "straight")
    lines = run.path("candidates.jsonl").read_text().splitlines()
    assert len(lines) == straight.evaluations and json.loads(lines[0])["weights"]["reconstruction"]
    assert json.loads(run.path("best.json").read_text())["fitness"] == straight.fitness
    assert (run.path("plots") / "search_curve.png").stat().st_size > 0
    assert (run.path("plots") / "weights.png").stat().st_size > 0

    out = tmp_path / "killed"
    train, options = small_search(out)
    original_start_batch = RandomCandidates.start_batch

    def die_in_second_epoch(self, epoch, batch):
        if epoch == 1 and batch == 1:
            raise Killed
        original_start_batch(self, epoch, batch)

    monkeypatch.setattr(RandomCandidates, "start_batch", die_in_second_epoch)
    with pytest.raises(Killed):
        adt.search(train, options, tiny)
    monkeypatch.setattr(RandomCandidates, "start_batch", original_start_batch)

    original_evaluate, calls = adt.evaluate_split, []

    def die_at_sixth_evaluation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise Killed
        return original_evaluate(*args, **kwargs)

    monkeypatch.setattr(adt, "evaluate_split", die_at_sixth_evaluation)
    with pytest.raises(Killed):
        adt.search(train, options, tiny, resume=True)
    monkeypatch.setattr(adt, "evaluate_split", original_evaluate)
    with pytest.raises(ValueError, match="already holds a search"):
        adt.search(train, options, tiny)
    adt.search(train, options, tiny, resume=True)
    assert result_of(out) == result_of(tmp_path / "straight")

    result = adt.retrain(out, tiny)
    assert set(result["test"]) >= {"ndcg@10", "hr@10"} and result["weights"] == json.loads(
        (out / "result.json").read_text())["architecture"]


def test_backbone_without_heads_is_refused(tmp_path, tiny):
    train, options = small_search(tmp_path / "gru", backbone="gru4rec")
    with pytest.raises(ValueError, match="Transformer backbone"):
        adt.search(train, options, tiny)


def test_resume_with_another_configuration_is_refused(tmp_path, tiny):
    train, options = small_search(tmp_path / "run", warmup_epochs=1)
    SearchRun(tmp_path / "run").write_config({"algorithm": "adt", "search": {}, "train": {}})
    with pytest.raises(ValueError, match="another configuration"):
        adt.search(train, options, tiny, resume=True)


def test_search_and_retrain_commands_print_json_and_refuse_bad_options(tmp_path, capsys):
    from seqrec_fast.cli import main

    out = tmp_path / "cli"
    common = ["--data", "synthetic:tiny", "--out", str(out), "--backbone", "sasrec", "--hidden-size", "16",
              "--num-heads", "2", "--max-len", "10", "--epochs", "3", "--no-progress", "--threads", "1"]
    budget = ["--warmup-epochs", "1", "--rounds", "1", "--population", "3", "--n-crossover", "1", "--n-mutation", "1",
              "--reconstruction-grid", "0,1e-3,1e-2", "--independence-grid", "0,1e-3,2e-3"]
    previous = torch.get_num_threads()
    try:
        assert main(["search", "adt", *common, *budget, "--json"]) == 0
        searched = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert searched["algorithm"] == "adt" and searched["metric"] == "ndcg@10"
        assert len(searched["architecture"]["reconstruction"]) == 2 and searched["evaluations"] >= 3
        # the objectives read every position: disjoint windows, not SASRec's strided default
        assert yaml.safe_load((out / "config.yaml").read_text())["train"]["window"] == "sliding"
        with pytest.raises(SystemExit):  # retraining takes the search's own configuration
            main(["retrain", str(out), "--json", "--epochs", "1"])
        assert "retrain takes no training options" in capsys.readouterr().err
        assert main(["retrain", str(out), "--json"]) == 0
        retrained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert {"ndcg@10", "hr@10"} <= set(retrained["test"]) and retrained["weights"] == searched["architecture"]
        assert main(["search", "adt", *common, "--independence-grid", "0,2e-3,1e-3", "--out", str(tmp_path / "bad")]) == 2
        assert "strictly increasing" in capsys.readouterr().err
        assert main(["search", "adt", *common, "--population", "many", "--out", str(tmp_path / "bad2")]) == 2
        assert "config key 'population': expected an integer" in capsys.readouterr().err
    finally:
        torch.set_num_threads(previous)
