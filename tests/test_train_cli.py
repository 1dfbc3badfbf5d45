"""The documented training command, on the raw ml-100k directory prepared on the fly."""

from __future__ import annotations

import json

import torch

from seqrec_fast.cli import main


def test_documented_train_command_prints_one_json_result(ml100k_dir, tmp_path, capsys):
    previous = torch.get_num_threads()
    try:
        code = main(["train", "--model", "sasrec", "--data", str(ml100k_dir), "--out", str(tmp_path / "run"),
                     "--max-len", "50", "--hidden-size", "16", "--num-layers", "2", "--num-heads", "2", "--loss", "ce",
                     "--batch-size", "256", "--lr", "1e-3", "--no-filter-history", "--json",
                     "--epochs", "1", "--threads", "1", "--no-progress"])
    finally:
        torch.set_num_threads(previous)
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["protocol"] == "full ranking, history kept"
    for split in ("valid", "test"):
        assert {"ndcg@10", "hr@10", "mrr@10"} <= set(result[split])
    assert result["train_samples_per_s"] > 0
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "training_curve.png").stat().st_size > 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
