"""Kill-and-resume gives bit-identical metrics; a NaN loss stops the run and keeps the last good
checkpoint; checkpoints load with weights_only=True."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqrec_fast.data import synthesize
from seqrec_fast.train import trainer as trainer_module
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import Trainer, TrainingDiverged

OPTIONS = {"model": "sasrec", "data": "synthetic:tiny", "max_len": 20, "hidden_size": 16, "inner_size": 32,
           "num_heads": 2, "batch_size": 64, "epochs": 8, "patience": 0, "checkpoint_every_steps": 3,
           "threads": 1, "seed": 3, "progress": False}


def cli_args(options: dict) -> list[str]:
    args = []
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return args


@pytest.fixture(autouse=True)
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def run_cli(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqrec_fast.cli", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


# SASRec's strided windows, GRU4Rec's disjoint ones packed by targets, BERT4Rec's cloze batches
# with mask-last batches shuffled among them.
@pytest.mark.parametrize("model, ema_decay, batch_size", [("sasrec", 0.0, 64), ("sasrec", 0.9, 64), ("gru4rec", 0.0, 640),
                                                        ("bert4rec", 0.0, 256)])
def test_kill_and_resume_gives_identical_metrics(tmp_path, model, ema_decay, batch_size):
    options = {**OPTIONS, "model": model, "ema_decay": ema_decay, "batch_size": batch_size}
    reference = Trainer(build_config(overrides={**options, "out": str(tmp_path / "reference")}),
                        synthesize("tiny", seed=0), log=lambda m: None).fit()

    run_dir = tmp_path / "killed"
    process = run_cli(cli_args({**options, "out": run_dir}))
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    state = torch.load(checkpoint, weights_only=True)
    assert 0 < state["progress"]["step"] < 8 * len(synthesize("tiny", seed=0).train_loader(
        batch_size=batch_size, max_len=20, mode="cloze" if model == "bert4rec" else "causal"))

    resumed = run_cli(["--out", str(run_dir), "--resume", "--json"])
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["valid"] == reference["valid"]
    assert result["test"] == reference["test"]
    assert result["best_epoch"] == reference["best_epoch"]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))  # no duplicate after the resume


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = build_config(overrides={**OPTIONS, "out": str(tmp_path / "nan"), "checkpoint_every_steps": 0})
    trainer = Trainer(config, synthesize("tiny", seed=0), log=lambda m: None)
    original = trainer_module.TrainingStep.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        loss = original(self, *args)
        return loss * float("nan") if calls["n"] > trainer.steps_per_epoch + 2 else loss

    monkeypatch.setattr(trainer_module.TrainingStep, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        trainer.fit()
    state = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["progress"]["batch"] == 0
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    best = torch.load(tmp_path / "nan" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == 1


def test_resume_refuses_a_missing_run_and_overwriting_one(tmp_path, capsys):
    from seqrec_fast.cli import main

    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err


@pytest.mark.parametrize("min_epochs, epochs_run", [(0, 3), (5, 5)])
def test_early_stopping_waits_for_min_epochs(tmp_path, monkeypatch, min_epochs, epochs_run):
    """A validation score that only falls after epoch 1 stops a patience-2 run at epoch 3, or at
    min_epochs when that is later; the best epoch stays the first either way."""
    config = build_config(overrides={**OPTIONS, "out": str(tmp_path / "stop"), "checkpoint_every_steps": 0,
                                     "patience": 2, "min_epochs": min_epochs})
    trainer = Trainer(config, synthesize("tiny", seed=0), log=lambda m: None)
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.0])
    real_validate = trainer._validate
    monkeypatch.setattr(trainer, "_validate", lambda split="valid": {
        **real_validate(split), config.metric: next(scores)} if split == "valid" else real_validate(split))
    result = trainer.fit()
    assert (result["epochs_run"], result["best_epoch"]) == (epochs_run, 1)
    assert result["stopped"] == f"no {config.metric} improvement in 2 evaluations"
