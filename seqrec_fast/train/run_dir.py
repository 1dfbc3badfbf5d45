"""A run directory (train, search, retrain) and its one writer.

A run directory is the path the user names: nothing stored inside it says where it lives, so a
copied or moved run resumes where it now is. A command claims the directory before it writes:

- the path must be a directory that can be created and written (else one clear error);
- an advisory lock (``run.lock``, ``fcntl.flock``) is held for the command's lifetime; the kernel
  drops it when the process ends, however it ends, and a second writer is refused with the
  holder's pid;
- a directory holding another run, or anything else, is refused unless the command resumes its
  own kind of run, or ``overwrite`` moves the old directory aside whole (``NAME.old-<UTC time>``);
- ``dataset.json`` pins the dataset: its absolute path and content checksum, checked whenever the
  run is resumed, evaluated or retrained.

Torch-free: the lock and the checks run before the heavy imports."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from ..atomic_io import atomic_write_json

LOCK = "run.lock"
DATASET = "dataset.json"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
# Options that change no result (display, parallelism of identical work), so a resumed run may set
# them anew: batches are the same for any number of loader threads.
DISPLAY_ONLY = ("loader_threads", "progress", "threads")


class RunDirError(ValueError):
    """A run directory cannot be used as asked; the message names it and what to do."""


# The holder writes its pid just after it takes the lock, so a refused writer may look in between.
HOLDER_PID_WAIT_S = 5.0


def _holder_pid(handle) -> str:
    """The pid the lock's holder wrote, waiting briefly for it to be written."""
    deadline = time.monotonic() + HOLDER_PID_WAIT_S
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "(pid not yet written)"
        time.sleep(0.01)


class RunLock:
    """The advisory lock of one run directory (a context manager). The lock file holds the
    holder's pid, for the error the next writer sees."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / LOCK
        self._handle = None
        self.moved_aside: Path | None = None  # set by claim(overwrite=True)

    def acquire(self) -> None:
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_pid(handle)
                handle.close()
                raise RunDirError(f"{self.root} is in use by process {holder} (lock {self.path}): a run directory "
                                  "takes one writer at a time; wait for that process to end or choose another "
                                  "directory") from None
            # The file may have been moved or removed between open and flock: then lock anew.
            try:
                current = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the last descriptor releases the flock
            self._handle = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------- what a dir holds
def run_kind(root: Path) -> str:
    """``"train"`` or ``"search"`` for a run directory, ``"empty"`` for a missing directory or one
    that holds nothing but its lock, ``"other"`` for anything else."""
    root = Path(root)
    try:
        if not root.is_dir() or not any(entry.name != LOCK for entry in root.iterdir()):
            return "empty"
    except OSError:  # unreadable: not a directory this package wrote
        return "other"
    config = root / CONFIG
    try:
        loaded = yaml.safe_load(config.read_text()) if config.is_file() else None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        loaded = None
    loaded = loaded if isinstance(loaded, dict) else {}
    if {"algorithm", "train"} <= set(loaded):
        return "search"
    if {"data", "model"} <= set(loaded) and ((root / METRICS).is_file() or (root / CHECKPOINTS).is_dir()):
        return "train"
    return "other"


def _enclosing_run(root: Path) -> tuple[Path, str] | None:
    for parent in Path(os.path.abspath(root)).parents:
        kind = run_kind(parent)
        if kind in ("train", "search"):
            return parent, kind
    return None


def _check_path(root: Path) -> None:
    """The nearest existing ancestor (or the path itself) must be a writable directory."""
    existing = next(p for p in (root, *root.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        where = "is a file" if existing == root else f"lies under {existing}, which is a file"
        raise RunDirError(f"run directory {root} {where}, not a directory; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"run directory {root}: {existing} is not writable by this user; choose another path")


def _mkdir(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"run directory {root}: cannot create it: {error.strerror}") from None


def move_aside(path: Path) -> Path:
    """Renames ``path`` to ``path.old-<UTC time>`` (with a counter if that exists); returns it."""
    path = Path(os.path.abspath(path))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.old-{stamp}")
    counter = 1
    while aside.exists():
        counter += 1
        aside = path.with_name(f"{path.name}.old-{stamp}-{counter}")
    path.rename(aside)
    return aside


def claim(root: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """Locks ``root`` for a run of ``kind`` ("train" or "search") and checks that the run may
    write there; returns the held lock (release it, or use it as a context manager). With
    ``overwrite`` an earlier directory is moved aside first; ``lock.moved_aside`` names it.
    Under torchrun the main process claims the directory for every rank."""
    root = Path(root)
    if int(os.environ.get("RANK", "0")) != 0:
        return RunLock(root)  # never acquired: release() does nothing
    _check_path(root)
    enclosing = _enclosing_run(root)
    if enclosing is not None:
        parent, parent_kind = enclosing
        raise RunDirError(f"{root} is part of the {parent_kind} run directory {parent}; a run needs a "
                          "directory of its own outside it")
    if resume and not root.is_dir():
        raise RunDirError(f"{root} holds no checkpoint to resume: there is no such directory")
    _mkdir(root)
    lock = RunLock(root)
    lock.acquire()
    try:
        found = run_kind(root)
        if resume:
            if found != kind:
                held = f"a {found} run" if found in ("train", "search") else "no run"
                raise RunDirError(f"{root} holds {held}, not a {kind} run to resume")
            return lock
        if found == "empty":
            return lock
        if not overwrite:
            held = f"already holds a {found} run" if found != "other" else "is not empty and holds no run"
            advice = "pass --resume to continue it, " if found == kind else ""
            raise RunDirError(f"{root} {held}; {advice}pass --overwrite to move it aside "
                              f"({root.name}.old-<time>), or choose another directory")
        aside = move_aside(root)
        _mkdir(root)
        fresh = RunLock(root)
        fresh.acquire()
        fresh.moved_aside = aside
        lock.release()
        return fresh
    except BaseException:
        lock.release()
        raise


# --------------------------------------------------------------------------------- dataset pinning
def pin_dataset(root: Path, data: str, dataset) -> None:
    """Records which dataset the run in ``root`` trains on."""
    from .data_source import content_checksum

    atomic_write_json(Path(root) / DATASET, {
        "data": data, "checksum": content_checksum(dataset), "users": int(dataset.n_users),
        "items": int(dataset.n_items), "interactions": int(dataset.n_interactions)})


def check_dataset(root: Path, data: str, dataset) -> None:
    """Refuses a dataset whose content differs from the one pinned in ``root``. Runs of earlier
    versions pin none and are not checked."""
    from .data_source import content_checksum

    path = Path(root) / DATASET
    if not path.is_file():
        return
    try:
        pinned: dict[str, Any] = json.loads(path.read_text())
        recorded, recorded_data = pinned["checksum"], pinned["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise RunDirError(f"{path}: unreadable dataset record ({error})") from None
    checksum = content_checksum(dataset)
    if checksum != recorded:
        raise RunDirError(f"{root} was made with dataset {recorded_data} (content checksum {recorded}), but {data} "
                          f"has content checksum {checksum}: another or rebuilt dataset; use the run's own "
                          "dataset, or start a new run for this one")
