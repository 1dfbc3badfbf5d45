"""Every backbone, trained for a few epochs on the tiny synthetic preset, ranks the held-out items
better than item popularity does (full ranking, history filtered)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_fast.models import MODELS
from seqrec_fast.train.config import build_config
from seqrec_fast.train.evaluation import Popularity, evaluate
from seqrec_fast.train.trainer import Trainer

EPOCHS = {"bert4rec": 25, "gru4rec": 8, "nextitnet": 6, "sasrec": 6, "stosa": 8}
# Targets per batch: about 64 windows of 20 for the disjoint windows, 64 strided windows' worth
# for SASRec, about 64 windows of one masked target for BERT4Rec.
BATCH_SIZE = {"bert4rec": 64, "gru4rec": 1280, "nextitnet": 1280, "sasrec": 64, "stosa": 1280}


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
        "num_heads": 2, "num_layers": 2, "dilations": "1,2", "dropout": 0.1, "attn_dropout": 0.1, "batch_size": BATCH_SIZE[name], "lr": 3e-3, "epochs": EPOCHS[name],
        "eval_every": EPOCHS[name], "progress": False, "seed": 0})
    result = Trainer(config, tiny, log=lambda message: None).fit()
    assert result["test"]["ndcg@10"] > popularity_test_metrics["ndcg@10"], (result["test"], popularity_test_metrics)
    assert result["test"]["hr@10"] > popularity_test_metrics["hr@10"]


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "bert4rec"])  # strided, sliding, cloze windows
def test_batches_hold_about_batch_size_targets(name, tiny, tmp_path):
    config = build_config(overrides={
        "model": name, "out": str(tmp_path / "run"), "max_len": 20, "hidden_size": 16, "inner_size": 32,
        "batch_size": 60, "stride": 4, "epochs": 1, "eval_every": 1, "progress": False, "seed": 0})
    trainer = Trainer(config, tiny, log=lambda message: None)
    targets = [int(np.count_nonzero(b["targets"])) for b in trainer.train_loader.epoch(0)]
    assert abs(np.mean(targets) - 60) <= (4 if name == "sasrec" else 20)
    if name == "sasrec":
        batch = next(trainer.train_loader.epoch(0))
        assert batch["inputs"].shape[0] >= 15  # 60 targets in windows of at most 4
        assert (batch["targets"][:, :-4] == 0).all() and (batch["targets"][:, -4:] > 0).any()
    trainer.fit()
    assert trainer.progress.samples == sum(targets)  # counted in targets


def test_the_test_ranks_saved_per_user_give_the_reported_test_metrics(tiny, tmp_path):
    from seqrec_fast.train.metrics import RankCounts, summarise

    config = build_config(overrides={
        "model": "sasrec", "out": str(tmp_path / "run"), "max_len": 20, "hidden_size": 16, "inner_size": 32,
        "epochs": 1, "progress": False, "seed": 0})
    result = Trainer(config, tiny, log=lambda message: None).fit()
    saved = np.load(tmp_path / "run" / "test_ranks.npz")
    np.testing.assert_array_equal(saved["users"], np.arange(tiny.n_users))
    counts = RankCounts(saved["greater"], saved["ties"], saved["n_negatives"])
    assert summarise(counts) == result["test"]
