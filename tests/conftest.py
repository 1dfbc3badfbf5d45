"""Shared pytest setup: GPU tests carry the `cuda` marker and are skipped without a device; the
data fixtures; a record of the batches a bilevel search steps on; a search through the commands."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture
def one_torch_thread():
    """Small models gain nothing from more threads, and on a busy machine more threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _with_offsets(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module


@pytest.fixture
def with_offsets():
    """``with_offsets(module, seed=0)``: every parameter moved off its initial value, as training
    leaves it (zero biases, unit LayerNorms and zero residual scales would hide a leak or a
    mismatch); returns the module."""
    return _with_offsets


@pytest.fixture(scope="session")
def tiny():
    """The `tiny` synthetic preset, seed 0 (read-only: tests must not change it)."""
    from seqrec_fast.data import synthesize

    return synthesize("tiny", seed=0)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The real MovieLens-100K (RecBole atomic files) beside the checkout; skipped if absent."""
    path = SHARED_DATA / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        pytest.skip(f"{path} is not present")
    return path


class Killed(Exception):
    """A search stopped where a test chose, as a kill would stop it."""


@pytest.fixture
def kill(monkeypatch):
    """``kill(run, owner, name, resume=..., at=None)``: ``run(resume)`` (a search) with
    ``owner.name`` raising :class:`Killed` when called, or, with ``at=(epoch, batch)``, when a
    ``before_batch`` hook is called for that batch (the earlier ones run it); the search must
    stop there."""

    def run_killed(run, owner, name: str, *, resume: bool, at: tuple[int, int] | None = None) -> None:
        original = getattr(owner, name)

        def dying(*args, **kwargs):
            if at is None or args[1:3] == at:  # before_batch(self, epoch, index)
                raise Killed
            return original(*args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(owner, name, dying)
            with pytest.raises(Killed):
                run(resume)

    return run_killed


@dataclass
class SteppedBatches:
    """The users of every batch the weights and the architecture were stepped on, and the
    trainers that ran (a search's supernet last)."""

    users: dict[str, set[int]] = field(default_factory=lambda: {"weights": set(), "architecture": set()})
    trainers: list = field(default_factory=list)

    def assert_architecture_steps_on(self, held_out: set[int], parameters: list[str]) -> None:
        """Architecture batches hold held-out users only, weight batches none of them; the
        supernet's architecture ``parameters`` (attribute names) are its architecture optimizer's
        alone."""
        assert self.users["architecture"] and self.users["architecture"] <= held_out
        assert self.users["weights"] and not self.users["weights"] & held_out
        search = self.trainers[-1]
        architecture = [getattr(search.model, name) for name in parameters]
        weights = {id(p) for group in search.optimizer.param_groups for p in group["params"]}
        assert not weights & {id(p) for p in architecture}
        assert [p for group in search.architecture_optimizer.param_groups for p in group["params"]] == architecture


@pytest.fixture
def stepped_batches(monkeypatch) -> SteppedBatches:
    """Records the batches of the trainers the test runs (see :class:`SteppedBatches`)."""
    from seqrec_fast.train.trainer import Trainer

    record, phase = SteppedBatches(), ["weights"]
    batch_tensors, architecture_step, fit = Trainer._batch_tensors, Trainer._architecture_step, Trainer.fit

    def recording(self, batch):
        record.users[phase[0]].update(batch["users"].tolist())
        return batch_tensors(self, batch)

    def stepping_architecture(self, index):
        phase[0] = "architecture"
        try:
            return architecture_step(self, index)
        finally:
            phase[0] = "weights"

    def fitting(self, *args, **kwargs):
        record.trainers.append(self)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_batch_tensors", recording)
    monkeypatch.setattr(Trainer, "_architecture_step", stepping_architecture)
    monkeypatch.setattr(Trainer, "fit", fitting)
    return record


@pytest.fixture
def commands_on_tiny(tmp_path, capsys):
    """``run(algorithm, *options)``: `seqrec-fast search ALGORITHM --fast-dev-run` on the tiny
    preset (with ``options``), then retrain (or, for an algorithm whose search trains and tests
    its model, retrain refused), recommend, evaluate (of the search's and of the model's
    directory) and export, each checked; returns the search's JSON and the export's model card."""
    from seqrec_fast.algorithms import registry
    from seqrec_fast.cli import main
    from seqrec_fast.nas.search_run import RETRAIN

    def command(*args: str) -> dict:
        assert main(list(args)) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    def run(algorithm: str, *options: str) -> tuple[dict, dict]:
        out = tmp_path / "search"
        found = command("search", algorithm, "--data", "synthetic:tiny", "--out", str(out), "--fast-dev-run", "--json",
                        "--no-progress", "--threads", "1", *options)
        assert found["algorithm"] == algorithm
        model_dir = registry.get(algorithm).model_dir
        if model_dir == RETRAIN:
            trained = command("retrain", str(out), "--fast-dev-run", "--json")
        else:
            assert main(["retrain", str(out)]) == 2
            assert "nothing to retrain" in capsys.readouterr().err
            trained = found
        assert {"ndcg@10", "hr@10", "mrr@5"} <= set(trained["test"])
        assert main(["recommend", str(out), "--out", str(tmp_path / "top.csv")]) == 0
        assert len((tmp_path / "top.csv").read_text().splitlines()) > 1
        for evaluated in (out / model_dir, out):
            assert command("evaluate", str(evaluated), "--json")["test"] == pytest.approx(trained["test"])
        card = command("export", str(out), "--out", str(tmp_path / "export"), "--json")
        assert card["check"]["max_abs_difference"] <= 1e-5 and card["model"]["algorithm"] == algorithm
        return found, card

    return run
