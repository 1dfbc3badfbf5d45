"""Every backbone, trained for a few epochs on the tiny synthetic preset, ranks the held-out items
better than item popularity does (full ranking, history filtered)."""

from __future__ import annotations

import pytest
import torch

from seqrec_fast.models import MODELS
from seqrec_fast.train.config import build_config
from seqrec_fast.train.evaluation import Popularity, evaluate
from seqrec_fast.train.trainer import Trainer

EPOCHS = {"bert4rec": 25, "gru4rec": 8, "nextitnet": 6, "sasrec": 6, "stosa": 8}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster, and far more steadily on a busy machine, on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def popularity_test_metrics(tiny):
    loader = tiny.eval_loader(split="test", batch_size=512, max_len=20)
    return evaluate(Popularity(tiny.item_counts()), loader, torch.device("cpu"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backbone_beats_popularity(name, tiny, popularity_test_metrics, tmp_path):
    config = build_config(overrides={
        "model": name, "out": str(tmp_path / name), "max_len": 20, "hidden_size": 32, "inner_size": 64,
        "num_heads": 2, "num_layers": 2, "dilations": "1,2", "dropout": 0.1, "attn_dropout": 0.1, "batch_size": 64, "lr": 3e-3, "epochs": EPOCHS[name],
        "eval_every": EPOCHS[name], "progress": False, "seed": 0})
    result = Trainer(config, tiny, log=lambda message: None).fit()
    assert result["test"]["ndcg@10"] > popularity_test_metrics["ndcg@10"], (result["test"], popularity_test_metrics)
    assert result["test"]["hr@10"] > popularity_test_metrics["hr@10"]


def test_strided_batches_hold_batch_size_targets(tiny, tmp_path):
    config = build_config(overrides={
        "model": "sasrec", "out": str(tmp_path / "run"), "max_len": 20, "hidden_size": 16, "inner_size": 32,
        "batch_size": 60, "stride": 4, "epochs": 1, "eval_every": 1, "progress": False, "seed": 0})
    trainer = Trainer(config, tiny, log=lambda message: None)
    batch = next(trainer.train_loader.epoch(0))
    assert batch["inputs"].shape == (15, 20)  # 60 targets in windows of 4
    assert (batch["targets"][:, :-4] == 0).all() and (batch["targets"][:, -4:] > 0).any()
    trainer.fit()
    assert trainer.progress.samples == 4 * trainer.train_loader.n_samples  # counted in targets
