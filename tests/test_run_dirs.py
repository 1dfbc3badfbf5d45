"""Run directories (train, search, retrain): identified by the path given, never overwritten
without --overwrite, one writer at a time, the dataset pinned; the CLI's user errors are one
line with exit code 2, Ctrl-C exits 130 naming the checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from seqrec_fast.algorithms.adt import search as adt
from seqrec_fast.cli import main
from seqrec_fast.data import synthesize
from seqrec_fast.nas.search_run import SearchRun
from seqrec_fast.train import trainer as trainer_module
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import Trainer, TrainingDiverged

OPTIONS = {"model": "sasrec", "data": "synthetic:tiny", "max_len": 20, "hidden_size": 16, "inner_size": 32,
           "num_heads": 2, "batch_size": 64, "epochs": 6, "patience": 0, "checkpoint_every_steps": 3,
           "threads": 1, "seed": 3, "progress": False}
SHORT = {**OPTIONS, "epochs": 1, "checkpoint_every_steps": 0}


def cli_args(options: dict) -> list[str]:
    args = []
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return args


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background job inherits it ignored


def start_cli(args: list[str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqrec_fast.cli", *args], cwd=cwd, preexec_fn=default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of OPTIONS, in process."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return Trainer(build_config(overrides={**OPTIONS, "out": str(out)}), synthesize("tiny", seed=0),
                   log=lambda m: None).fit()


def train(out: Path, *extra: str, options: dict = SHORT) -> int:
    return main(["train", *cli_args({**options, "out": out}), *extra])


# ------------------------------------------------------------------- finding 1: resume where told
def test_a_resumed_copy_of_a_killed_run_finishes_the_copy_from_another_directory(tmp_path, reference):
    first_cwd, second_cwd = tmp_path / "here", tmp_path / "elsewhere"
    first_cwd.mkdir()
    process = start_cli(["train", *cli_args({**OPTIONS, "out": "runs/a"})], cwd=first_cwd)
    original = first_cwd / "runs" / "a"
    wait_for(original / "checkpoints" / "last.pt", process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = snapshot(original)
    shutil.copytree(original, second_cwd / "runs" / "b")

    resumed = start_cli(["train", "--out", "runs/b", "--resume", "--json"], cwd=second_cwd)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert (result["valid"], result["test"], result["best_epoch"]) == (
        reference["valid"], reference["test"], reference["best_epoch"])
    copy = second_cwd / "runs" / "b"
    assert json.loads((copy / "result.json").read_text())["test"] == reference["test"]
    assert [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
    assert snapshot(original) == before  # byte for byte
    assert "out" not in yaml.safe_load((copy / "config.yaml").read_text())  # nothing names where it lives


SEARCH = ["--data", "synthetic:tiny", "--backbone", "sasrec", "--seed", "3", "--no-progress", "--threads", "1",
          "--checkpoint-every-steps", "1", "--hidden-size", "16", "--num-heads", "2", "--inner-size", "32",
          "--max-len", "10", "--epochs", "2", "--warmup-epochs", "2", "--rounds", "1", "--population", "3",
          "--n-crossover", "1", "--n-mutation", "1", "--reconstruction-grid", "0,1e-3,1e-2",
          "--independence-grid", "0,1e-3,2e-3"]


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """A search killed in its warm-up, copied, and the copy resumed through the CLI (finding 1's
    search case); returns (original, copy, snapshot of the original when it was copied)."""
    root = tmp_path_factory.mktemp("search")
    original, copy = root / "a", root / "b"
    process = start_cli(["search", "adt", "--out", str(original), *SEARCH])
    wait_for(original / "supernet" / "checkpoints" / "last.pt", process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    before = snapshot(original)
    shutil.copytree(original, copy)
    previous = torch.get_num_threads()
    try:
        assert main(["search", "adt", "--out", str(copy), "--resume", "--no-progress", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(previous)
    return original, copy, before


def test_a_resumed_copy_of_a_search_finishes_the_copy(finished_search):
    original, copy, before = finished_search
    assert (copy / "result.json").is_file() and not (original / "result.json").exists()
    assert snapshot(original) == before
    assert "out" not in yaml.safe_load((copy / "config.yaml").read_text())["train"]


# ------------------------------------------------------------------ finding 2: overwrite protection
def test_no_kind_of_run_directory_is_overwritten_without_overwrite(tmp_path, finished_search, capsys):
    _, search_dir, _ = finished_search
    search = tmp_path / "search"
    shutil.copytree(search_dir, search)
    before = snapshot(search)
    assert train(search) == 2
    assert "holds a search" in capsys.readouterr().err
    assert snapshot(search) == before
    assert train(search / "retrain") == 2 and train(search / "supernet") == 2
    assert "part of the search" in capsys.readouterr().err
    assert snapshot(search) == before

    run = tmp_path / "train"
    assert train(run) == 0
    trained = snapshot(run)
    assert main(["search", "adt", "--data", "synthetic:tiny", "--out", str(run), "--backbone", "sasrec"]) == 2
    assert "holds a train run" in capsys.readouterr().err
    assert train(run) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(run) == trained

    assert train(search, "--overwrite") == 0  # the search is moved aside, whole
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("search.old-")]
    assert len(moved) == 1 and snapshot(moved[0]) == before
    assert "algorithm" not in yaml.safe_load((search / "config.yaml").read_text())


def test_retrain_overwrite_moves_the_earlier_retraining_aside(tmp_path, finished_search, capsys):
    _, search_dir, _ = finished_search
    search = tmp_path / "search"
    shutil.copytree(search_dir, search)
    assert main(["retrain", str(search), "--json"]) == 0
    first = snapshot(search / "retrain")
    assert main(["retrain", str(search), "--overwrite", "--json"]) == 0
    moved = [p for p in search.iterdir() if p.name.startswith("retrain.old-")]
    assert len(moved) == 1 and snapshot(moved[0]) == first
    assert (search / "retrain" / "result.json").is_file()


# ---------------------------------------------------------------- finding 3: one writer per run
def test_a_second_training_on_one_out_exits_2_naming_the_first(tmp_path, reference):
    out = tmp_path / "shared"
    args = ["train", *cli_args({**OPTIONS, "out": out}), "--json"]
    processes = [start_cli(args), start_cli(args)]
    finished = []
    while len(finished) < 2:  # the order in which they end
        for process in processes:
            if process not in finished and process.poll() is not None:
                finished.append(process)
        time.sleep(0.01)
    loser, winner = finished
    _, loser_err = loser.communicate()
    winner_out, winner_err = winner.communicate()
    assert loser.returncode == 2, loser_err
    assert f"process {winner.pid}" in loser_err and "Traceback" not in loser_err
    assert len(loser_err.strip().splitlines()) == 1
    assert winner.returncode == 0, winner_err
    result = json.loads(winner_out.strip().splitlines()[-1])
    assert (result["valid"], result["test"]) == (reference["valid"], reference["test"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == OPTIONS["epochs"]


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    from seqrec_fast.train.run_dir import RunDirError, RunLock

    out = tmp_path
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from seqrec_fast.train.run_dir import RunLock; "
                               f"lock = RunLock({str(out)!r}); lock.acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirError, match=f"process {holder.pid}"):
        RunLock(out).acquire()
    holder.kill()
    holder.wait()
    lock = RunLock(out)
    lock.acquire()  # the kernel released the dead holder's lock
    lock.release()


def test_a_writer_refused_before_the_holder_wrote_its_pid_still_names_it(tmp_path):
    import fcntl
    import threading

    from seqrec_fast.train.run_dir import LOCK, RunDirError, RunLock

    # The holder has the lock but has not yet written its pid, as between its flock and its write.
    with open(tmp_path / LOCK, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        writer = threading.Timer(0.2, lambda: (held.write("4242\n"), held.flush()))
        writer.start()
        try:
            with pytest.raises(RunDirError, match="process 4242 "):
                RunLock(tmp_path).acquire()
        finally:
            writer.join()


# ---------------------------------------------------------------- finding 4: the dataset is pinned
def test_a_relative_data_is_stored_absolute_and_evaluate_scores_the_runs_own_dataset(tmp_path, monkeypatch, capsys):
    for name, seed in (("first", 0), ("second", 1)):
        synthesize("tiny", seed=seed).save(tmp_path / name / "data")
    monkeypatch.chdir(tmp_path / "first")
    run = tmp_path / "run"
    assert train(run, options={**SHORT, "data": "data"}) == 0
    capsys.readouterr()
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(tmp_path / "first" / "data")
    assert main(["evaluate", str(run), "--json"]) == 0
    here = json.loads(capsys.readouterr().out)
    monkeypatch.chdir(tmp_path / "second")  # another dataset at the same relative path
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"] == here["test"]


def test_resume_and_evaluate_refuse_a_dataset_that_changed(tmp_path, capsys):
    data = tmp_path / "data"
    synthesize("tiny", seed=0).save(data)
    run = tmp_path / "run"
    assert train(run, options={**SHORT, "data": str(data)}) == 0
    synthesize("tiny", seed=1).save(data)  # rebuilt under the run
    capsys.readouterr()
    for command in (["train", "--out", str(run), "--resume"], ["evaluate", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "checksum" in err and str(data) in err and len(err.strip().splitlines()) == 1, err
    synthesize("tiny", seed=0).save(data)
    assert main(["evaluate", str(run), "--json"]) == 0


def test_retrain_refuses_a_dataset_that_changed(finished_search):
    _, search, _ = finished_search
    with pytest.raises(ValueError, match="checksum"):
        adt.retrain(search, synthesize("tiny", seed=1))
    with pytest.raises(ValueError, match="checksum"):
        config, options = adt.load_config(SearchRun(search))
        adt.search(config, options, synthesize("tiny", seed=1), resume=True)


# ------------------------------------------------------------------ finding 8: the CLI's errors
def test_an_out_that_cannot_be_a_run_directory_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("precious")
    for out, expected in ((a_file, "is a file"), (a_file / "run", "is a file"),
                          (Path("/sys/seqrec_fast_run"), "cannot create")):
        assert train(out) == 2
        err = capsys.readouterr().err
        assert expected in err and str(out) in err and len(err.strip().splitlines()) == 1, err
    assert a_file.read_text() == "precious"


def test_ctrl_c_names_the_last_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    process = start_cli(["train", *cli_args({**OPTIONS, "out": out, "epochs": 50})])
    checkpoint = out / "checkpoints" / "last.pt"
    wait_for(checkpoint, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"interrupted: the last checkpoint is {checkpoint}; resume with --resume" in stderr
    assert "Traceback" not in stderr
    assert torch.load(checkpoint, weights_only=True)["progress"]["step"] > 0


def test_a_bug_shows_a_traceback_and_asks_for_a_report(monkeypatch, capsys):
    from seqrec_fast.train import commands

    def broken(args):
        raise RuntimeError("an internal mistake")

    monkeypatch.setattr(commands, "run_train", broken)
    assert main(["train", "--out", "x"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "an internal mistake" in err and "please report" in err


# ------------------------------------------------------------------ finding 9: run messages true
def test_divergence_before_any_checkpoint_names_none(tmp_path, monkeypatch):
    config = build_config(overrides={**OPTIONS, "out": str(tmp_path / "nan"), "checkpoint_every_steps": 0})
    trainer = Trainer(config, synthesize("tiny", seed=0), log=lambda m: None)
    original = trainer_module.TrainingStep.forward
    monkeypatch.setattr(trainer_module.TrainingStep, "forward", lambda self, *a: original(self, *a) * float("inf"))
    with pytest.raises(TrainingDiverged) as raised:
        trainer.fit()
    assert "last.pt" not in str(raised.value) and "no checkpoint" in str(raised.value)
    assert not (tmp_path / "nan" / "checkpoints" / "last.pt").exists()


def test_lr_inf_never_points_at_a_missing_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--lr", "inf") in (1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if "last.pt" in err:
        assert (run / "checkpoints" / "last.pt").is_file(), err


def test_resume_allows_display_only_options(tmp_path, capsys, finished_search):
    run = tmp_path / "run"
    assert train(run) == 0
    assert main(["train", "--out", str(run), "--resume", "--progress", "false", "--threads", "1",
                 "--loader-threads", "2"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.1"]) == 2
    assert "--lr" in capsys.readouterr().err
    _, search, _ = finished_search
    assert main(["search", "adt", "--out", str(search), "--resume", "--loader-threads", "2", "--no-progress"]) == 0
