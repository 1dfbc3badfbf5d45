"""The moving average of the weights: its update rule, and that validation, best.pt and the test
all use it when ema_decay is set."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqrec_fast.data import synthesize
from seqrec_fast.train.config import ConfigError, build_config
from seqrec_fast.train.evaluation import evaluate_checkpoint
from seqrec_fast.train.trainer import Trainer
from seqrec_fast.train.weight_average import WeightAverage

OPTIONS = {"model": "sasrec", "data": "synthetic:tiny", "max_len": 20, "hidden_size": 16, "inner_size": 32,
           "num_heads": 2, "batch_size": 64, "epochs": 3, "patience": 0, "threads": 1, "seed": 5,
           "progress": False}


def test_update_follows_the_ramped_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5))
    average = WeightAverage(model, decay=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model[1].running_mean.fill_(2.0)
    # Step 0 keeps 1/10 of the start; by step 1000 the ramp (1001/1010) is past the decay 0.9.
    assert average.decay_at(0) == pytest.approx(0.1) and average.decay_at(1000) == 0.9
    average.update(0)
    for old, new, averaged in zip(start, model.parameters(), average.model.parameters()):
        torch.testing.assert_close(averaged, 0.1 * old + 0.9 * new)
    before = [p.clone() for p in average.model.parameters()]
    average.update(1000)
    for old, new, averaged in zip(before, model.parameters(), average.model.parameters()):
        torch.testing.assert_close(averaged, 0.9 * old + 0.1 * new)
    assert torch.equal(average.model[1].running_mean, model[1].running_mean)  # buffers copied
    assert not any(p.requires_grad for p in average.model.parameters())


def test_tied_weights_stay_tied():
    embedding = nn.Embedding(7, 4)
    head = nn.Linear(4, 7, bias=False)
    head.weight = embedding.weight
    average = WeightAverage(nn.ModuleDict({"embedding": embedding, "head": head}), decay=0.5)
    assert average.model["head"].weight is average.model["embedding"].weight


@pytest.mark.parametrize("value", ["1", "-0.1"])
def test_decay_outside_0_1_is_refused(value):
    with pytest.raises(ConfigError, match="config key 'ema_decay': expected a number in \\[0, 1\\)"):
        build_config(overrides={"ema_decay": value})


def test_validation_best_checkpoint_and_test_use_the_average(tmp_path):
    torch.set_num_threads(1)
    config = build_config(overrides={**OPTIONS, "out": str(tmp_path / "run"), "ema_decay": "0.95"})
    dataset = synthesize("tiny", seed=0)
    trainer = Trainer(config, dataset, log=lambda m: None)
    result = trainer.fit()
    assert trainer.eval_model is trainer.average.model
    trained = trainer.model.state_dict()
    averaged = trainer.average.model.state_dict()
    assert any(not torch.equal(trained[key], averaged[key]) for key in trained)

    # best.pt holds the averaged weights of the best epoch: evaluating it reproduces the run's
    # reported validation and test metrics exactly.
    reloaded = evaluate_checkpoint(config, dataset, tmp_path / "run" / "checkpoints" / "best.pt")
    assert reloaded["valid"] == result["valid"]
    assert reloaded["test"] == result["test"]
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["average"].keys() == averaged.keys()  # resumes with the average (test_train_resume)
