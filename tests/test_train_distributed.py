"""`torchrun --nproc-per-node 2` (gloo on CPU) trains with DDP on sharded batches, and its
gathered evaluation equals a single process evaluating the same checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch.distributed as dist

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def test_torchrun_two_processes_match_single_process_metrics(tmp_path):
    run_dir = tmp_path / "ddp"
    train = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "seqrec_fast.cli", "train", "--model", "sasrec", "--data", "synthetic:tiny", "--out", str(run_dir),
         "--max-len", "20", "--hidden-size", "16", "--inner-size", "32", "--batch-size", "64", "--epochs", "2",
         "--no-progress", "--json"],
        capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    distributed_result = json.loads(train.stdout.strip().splitlines()[-1])
    assert distributed_result["world_size"] == 2

    evaluate = subprocess.run([sys.executable, "-m", "seqrec_fast.cli", "evaluate", str(run_dir), "--json"],
                              capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    single = json.loads(evaluate.stdout.strip().splitlines()[-1])
    assert single["test"] == pytest.approx(distributed_result["test"], abs=1e-12)
    assert single["valid"] == pytest.approx(distributed_result["valid"], abs=1e-12)
