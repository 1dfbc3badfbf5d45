"""Up-front resource limits: max_len is capped at the longest sequence the model can read, and a
training step whose estimated memory exceeds the machine's is refused with the estimate
(issue 16, finding 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_fast.cli import main
from seqrec_fast.train import limits
from seqrec_fast.train.config import ConfigError, build_config


def longest(dataset) -> int:
    return int(np.diff(dataset.offsets).max())


def test_max_len_above_the_longest_sequence_is_capped_with_a_log_line(tiny, caplog):
    config = build_config(overrides={"max_len": "5000"})
    with caplog.at_level("INFO", logger="seqrec_fast.train"):
        limits.enforce_limits(config, tiny, resume=False)
    assert config.model.max_len == longest(tiny)
    assert f"max_len 5000 is above the longest sequence ({longest(tiny)} items)" in caplog.text


def test_max_len_within_the_data_is_kept(tiny, caplog):
    config = build_config(overrides={"max_len": "10"})
    limits.enforce_limits(config, tiny, resume=False)
    assert config.model.max_len == 10


def test_a_resumed_run_keeps_the_max_len_its_checkpoint_was_built_with(tiny):
    above = longest(tiny) + 10
    config = build_config(overrides={"max_len": str(above)})
    limits.enforce_limits(config, tiny, resume=True)
    assert config.model.max_len == above


def test_a_step_above_the_machines_memory_is_refused_with_the_estimate(tiny, monkeypatch):
    monkeypatch.setattr(limits, "machine_memory_bytes", lambda device: 10**9)
    config = build_config(overrides={"max_len": "40", "batch_size": "4096", "hidden_size": "1024", "window": "sliding"})
    windows = limits.windows_per_batch(config, tiny)
    estimate = limits.step_memory_bytes(config, windows, tiny.n_items, torch.device("cpu"))
    assert estimate > 10**9
    with pytest.raises(ConfigError, match=r"a training step needs about [\d.]+ GB .* this machine has 1.0 GB.*max_len") as info:
        limits.enforce_limits(config, tiny, resume=False)
    assert f"{estimate / 1e9:.1f} GB" in str(info.value)


def test_the_estimate_grows_with_each_size():
    cpu = torch.device("cpu")

    def estimate(n_windows: int = 64, n_items: int = 10_000, **overrides: str) -> int:
        config = build_config(overrides={"max_len": "50", "window": "sliding", "batch_size": "2048", "eval_batch_size": "1",
                                         **overrides})
        return limits.step_memory_bytes(config, n_windows, n_items, cpu)

    reference = estimate()
    for key, value in (("max_len", "200"), ("batch_size", "8192"), ("hidden_size", "256"), ("num_layers", "4")):
        assert estimate(**{key: value}) > reference, key
    assert estimate(n_windows=256) > reference
    assert estimate(n_items=1_000_000) > reference
    assert estimate(fused_ce="false") > reference


@pytest.mark.parametrize("overrides", [{}, {"window": "sliding"}, {"model": "bert4rec", "mask_last_ratio": "0"},
                                       {"model": "bert4rec", "mask_last_ratio": "0", "window": "sliding"},
                                       {"model": "bert4rec"}, {"model": "bert4rec", "mask_last_ratio": "0", "mask_span": "window"},
                                       {"model": "gru4rec"}])
def test_the_windows_per_batch_are_near_the_loaders(tiny, overrides):
    from seqrec_fast.models import model_class

    config = build_config(overrides={"max_len": "20", "batch_size": "512", **overrides})
    objective = model_class(config.model.name).objective
    loader = tiny.train_loader(
        batch_size=512, max_len=20, mode=objective, mask_prob=config.model.mask_prob,
        mask_last_ratio=config.model.mask_last_ratio if objective == "cloze" else 0.0,
        mask_span=config.model.mask_span if objective == "cloze" else "targets",
        window=config.resolved_window(), stride=config.loader_stride(), n_negatives=0)
    largest = max(len(batch["inputs"]) for batch in loader.epoch(0))
    assert 0.7 * largest <= limits.windows_per_batch(config, tiny) <= 1.5 * largest


def test_machine_memory_is_known():
    import torch

    assert limits.machine_memory_bytes(torch.device("cpu")) > 2**28


def test_cli_train_with_a_huge_max_len_trains_capped(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "synthetic:tiny", "--out", str(out), "--max-len", "100000", "--epochs", "1",
                 "--hidden-size", "16", "--progress", "false", "--json"])
    assert code == 0, capsys.readouterr().err
    assert "max_len: 100000" not in (out / "config.yaml").read_text()


MEASURE_STEP = """
import resource, sys
import numpy as np, torch
from seqrec_fast.data import from_interactions
from seqrec_fast.models import build_model
from seqrec_fast.train import limits
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import TrainingStep, make_optimizer

torch.set_num_threads(1)
model, length = sys.argv[1], int(sys.argv[2])
users = np.repeat(np.arange(300), length + 3)
dataset = from_interactions(users, np.random.default_rng(0).integers(1, 3000, len(users)))
config = build_config(overrides={"model": model, "max_len": str(length), "batch_size": str(128 * length),
                                 "window": "sliding", "eval_batch_size": "1"})
net = build_model(config.model, dataset.n_items)
step = TrainingStep(net, config, None, None)
optimizer = make_optimizer(step, config)
loader = dataset.train_loader(batch_size=config.batch_size, max_len=length, mode=net.objective,
                              n_negatives=config.resolved_negatives(), window="sliding")
batch = {key: torch.from_numpy(np.asarray(value)) for key, value in next(iter(loader.epoch(0))).items()}
resident = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
step(batch["inputs"], batch["targets"], batch.get("negatives")).backward()
optimizer.step()
# The peak of this process's own memory map (VmHWM): ru_maxrss keeps the forking parent's peak
# across exec, so it would measure the test runner instead of the step.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
grown = peak_kb * 1024 - resident
windows = limits.windows_per_batch(config, dataset)
assert len(batch["inputs"]) <= windows <= 2 * len(batch["inputs"]), (windows, len(batch["inputs"]))
print(limits.step_memory_bytes(config, windows, dataset.n_items, torch.device("cpu")), grown)
"""


def test_the_estimate_is_near_a_measured_step():
    import subprocess
    import sys

    # A fresh process, so that its peak resident memory is the step's (over what it held before).
    measured = subprocess.run([sys.executable, "-c", MEASURE_STEP, "sasrec", "150"], capture_output=True, text=True)
    assert measured.returncode == 0, measured.stderr
    estimate, grown = map(int, measured.stdout.split()[-2:])
    # The growth also holds one-time allocations of a first step (kernels' scratch, allocator
    # arenas), which vary between processes. The estimate's job is the order of magnitude that
    # refuses a 500 GB step.
    assert 1 / 3 < estimate / grown < 3.0, (estimate, grown)
