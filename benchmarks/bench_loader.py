"""Loader benchmark on the synthetic ml-20m preset (138,493 users, 26,744 items, 20,000,263
interactions).

Measures, each phase in a fresh process so that its peak memory (max RSS) is its own:
  synth    synthesize ml-20m and write its cache
  prepare  `prepare_dataset` of a 20M-row MovieLens ratings.csv written from that data
  load     memory-map the cache (cached load), then stream one epoch of training batches
  loaders  training batches of B=256, L=200, one uniform negative per position (never from the
           user's history), one epoch's users in shuffled order, for: the Rust loader at 0 (in the
           calling thread), 1 and 2 background threads; (a) a per-sample torch Dataset +
           DataLoader doing the same work in Python (0 and 2 workers); (b) a vectorised numpy
           implementation of the same batches.
Sequences/s counts rows; tokens/s counts the B x L positions produced.

Prints a table and writes benchmarks/results/bench_loader.json.

    python benchmarks/bench_loader.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH, MAX_LEN, NEGATIVES = 256, 200, 1
RESULTS = Path(__file__).resolve().parent / "results" / "bench_loader.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def csr_bytes(ds) -> int:
    return ds.offsets.nbytes + ds.items.nbytes + ds.times.nbytes


# -- phases (each runs in its own process) --------------------------------------------------------
def phase_synth(workdir: Path) -> dict:
    from seqrec_fast.data import synthesize

    started = time.perf_counter()
    ds = synthesize("ml-20m", seed=0)
    synth_s = time.perf_counter() - started
    started = time.perf_counter()
    ds.save(workdir / "ml-20m")
    return {"synth_s": synth_s, "save_s": time.perf_counter() - started, "stats": ds.stats(),
            "csr_mb": csr_bytes(ds) / 2**20, "peak_rss_mb": peak_rss_mb()}


def phase_write_csv(workdir: Path) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from seqrec_fast.data import load_dataset

    ds = load_dataset(workdir / "ml-20m")
    users = np.repeat(np.arange(1, ds.n_users + 1, dtype=np.int64), np.diff(ds.offsets))
    # Shuffle the rows so that `prepare` has to sort, as with a real log.
    order = np.random.default_rng(0).permutation(len(users))
    rng = np.random.default_rng(1)
    table = pa.table({
        "userId": users[order],
        "movieId": ds.items[order].astype(np.int64),
        "rating": (rng.integers(1, 11, len(users)) / 2.0),
        "timestamp": ds.times[order],
    })
    started = time.perf_counter()
    path = workdir / "ratings.csv"
    pacsv.write_csv(table, path)
    return {"rows": table.num_rows, "bytes": path.stat().st_size, "write_s": time.perf_counter() - started}


def phase_prepare(workdir: Path) -> dict:
    from seqrec_fast.data import prepare_dataset

    started = time.perf_counter()
    ds = prepare_dataset(workdir / "ratings.csv", "movielens", workdir / "prepared", force=True)
    seconds = time.perf_counter() - started
    return {"prepare_s": seconds, "users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions,
            "csr_mb": csr_bytes(ds) / 2**20, "peak_rss_mb": peak_rss_mb()}


def phase_load(workdir: Path) -> dict:
    from seqrec_fast.data import load_dataset

    started = time.perf_counter()
    ds = load_dataset(workdir / "ml-20m")  # verifies every checksum
    load_s = time.perf_counter() - started
    after_load = peak_rss_mb()
    loader = ds.train_loader(batch_size=targets_per_batch(ds), max_len=MAX_LEN, n_negatives=NEGATIVES, num_threads=2)
    for _batch in loader.epoch(0):
        pass
    return {"load_s": load_s, "csr_mb": csr_bytes(ds) / 2**20, "rss_after_load_mb": after_load,
            "peak_rss_mb": peak_rss_mb()}


def targets_per_batch(ds) -> int:
    """The loader's batch_size (targets) that packs about BATCH of its one-per-user windows: the
    other implementations' batches hold BATCH sequences."""
    train_lengths = np.asarray(ds.train_end) - np.asarray(ds.offsets)[:-1]
    return round(BATCH * float(np.clip(train_lengths - 1, 1, MAX_LEN).mean()))


# -- the three implementations of the same batches -------------------------------------------------
class PerSampleDataset:
    """(a) What a torch user writes: one sample per __getitem__, negatives by rejection against a
    set of the user's history (as in the SASRec reference sampler)."""

    def __init__(self, offsets, train_end, items, n_items, seed):
        import random

        self.offsets, self.train_end, self.items, self.n_items = offsets, train_end, items, n_items
        self.users = np.flatnonzero(train_end - offsets[:-1] >= 2)
        self.random = random.Random(seed)

    def __len__(self):
        return len(self.users)

    def __getitem__(self, index):
        import torch

        user = int(self.users[index])
        sequence = self.items[self.offsets[user]:self.train_end[user]]
        history = set(sequence.tolist())
        window = sequence[-(MAX_LEN + 1):]
        n = len(window) - 1
        inputs = np.zeros(MAX_LEN, dtype=np.int64)
        targets = np.zeros(MAX_LEN, dtype=np.int64)
        negatives = np.zeros((MAX_LEN, NEGATIVES), dtype=np.int64)
        inputs[MAX_LEN - n:] = window[:-1]
        targets[MAX_LEN - n:] = window[1:]
        for position in range(MAX_LEN - n, MAX_LEN):
            for k in range(NEGATIVES):
                item = self.random.randint(1, self.n_items)
                while item in history:
                    item = self.random.randint(1, self.n_items)
                negatives[position, k] = item
        return {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets),
                "negatives": torch.from_numpy(negatives), "users": user}


def numpy_batches(offsets, train_end, items, n_items, seed):
    """(b) The fastest vectorised numpy version we could write: gathers by index arithmetic, and
    negatives by rejection against a dense [B, n_items + 1] history mask."""
    rng = np.random.default_rng(seed)
    users_all = np.flatnonzero(train_end - offsets[:-1] >= 2)
    users_all = users_all[rng.permutation(len(users_all))]
    mask = np.zeros((BATCH, n_items + 1), dtype=bool)
    columns = np.arange(MAX_LEN)
    for first in range(0, len(users_all), BATCH):
        users = users_all[first:first + BATCH]
        b = len(users)
        start, end = offsets[users], train_end[users]
        # target positions end - L .. end - 1; valid where >= start + 1
        positions = end[:, None] - MAX_LEN + columns[None, :]
        valid = positions >= (start + 1)[:, None]
        safe = np.where(valid, positions, 1)
        targets = np.where(valid, items[safe], 0).astype(np.int64)
        inputs = np.where(valid, items[safe - 1], 0).astype(np.int64)
        # history mask of every user in the batch
        lengths = end - start
        rows = np.repeat(np.arange(b), lengths)
        flat = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        history_items = items[flat]
        mask[rows, history_items] = True
        negatives = rng.integers(1, n_items + 1, size=(b, MAX_LEN, NEGATIVES))
        row_index = np.broadcast_to(np.arange(b)[:, None, None], negatives.shape)
        bad = mask[row_index, negatives]
        while bad.any():
            negatives[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
            bad = mask[row_index, negatives]
        negatives[~valid] = 0
        mask[rows, history_items] = False
        yield {"inputs": inputs, "targets": targets, "negatives": negatives, "users": users}


def timed(iterator, max_batches: int, warmup: int = 2) -> dict:
    """Rows per second over up to `max_batches` batches after `warmup` batches."""
    for _ in range(warmup):
        next(iterator)
    rows = batches = 0
    cpu_before, started = os.times(), time.perf_counter()
    for batch in iterator:
        rows += len(batch["users"])
        batches += 1
        if batches >= max_batches:
            break
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    # CPU seconds of this process (all its threads; DataLoader worker processes are not counted).
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"batches": batches, "sequences": rows, "seconds": seconds, "cpu_seconds": cpu,
            "sequences_per_s": rows / seconds, "tokens_per_s": rows * MAX_LEN / seconds,
            "load_average_1min": os.getloadavg()[0]}


def phase_loaders(workdir: Path) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from seqrec_fast.data import load_dataset

    torch.set_num_threads(1)
    ds = load_dataset(workdir / "ml-20m")
    offsets, train_end, items = np.asarray(ds.offsets), np.asarray(ds.train_end), np.asarray(ds.items)
    results = {}
    for threads in (0, 1, 2):
        loader = ds.train_loader(batch_size=targets_per_batch(ds), max_len=MAX_LEN, n_negatives=NEGATIVES,
                                 num_threads=threads, seed=0)
        runs = [timed(iter(loader.epoch(epoch)), max_batches=10**9) for epoch in range(3)]
        results[f"rust_threads_{threads}"] = max(runs, key=lambda r: r["sequences_per_s"])
    results["numpy_vectorised"] = timed(numpy_batches(offsets, train_end, items, ds.n_items, 0), max_batches=150)
    for workers in (0, 2):
        dataset = PerSampleDataset(offsets, train_end, items, ds.n_items, seed=0)
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0)
        results[f"torch_dataloader_workers_{workers}"] = timed(iter(loader), max_batches=12 if workers == 0 else 24)
    return results


PHASES = {"synth": phase_synth, "write_csv": phase_write_csv, "prepare": phase_prepare, "load": phase_load,
          "loaders": phase_loaders}


def run_phase(name: str, workdir: Path) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--phase", name, "--workdir", str(workdir)],
                               stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="where the 20M-row files go (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.workdir)))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_loader_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        phases = {}
        for name in ("synth", "write_csv", "prepare", "load", "loaders"):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            phases[name] = run_phase(name, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    loaders = phases["loaders"]
    rust1, rust2 = loaders["rust_threads_1"], loaders["rust_threads_2"]
    torch0, torch2 = loaders["torch_dataloader_workers_0"], loaders["torch_dataloader_workers_2"]
    numpy_ = loaders["numpy_vectorised"]
    csr_mb = phases["synth"]["csr_mb"]
    summary = {
        "rust_1_thread_sequences_per_s": rust1["sequences_per_s"],
        "speedup_vs_torch_per_sample_1_thread": rust1["sequences_per_s"] / torch0["sequences_per_s"],
        "speedup_vs_torch_per_sample_2_workers": rust2["sequences_per_s"] / torch2["sequences_per_s"],
        "speedup_vs_numpy_1_thread": rust1["sequences_per_s"] / numpy_["sequences_per_s"],
        "speedup_vs_numpy_rust_2_threads": rust2["sequences_per_s"] / numpy_["sequences_per_s"],
        "synth_ml20m_s": phases["synth"]["synth_s"],
        "prepare_20m_csv_s": phases["prepare"]["prepare_s"],
        "cached_load_s": phases["load"]["load_s"],
        "csr_mb": csr_mb,
        "peak_rss_over_csr": {name: phases[name]["peak_rss_mb"] / csr_mb for name in ("synth", "prepare", "load")},
    }
    result = {"benchmark": "bench_loader", "machine": machine(),
              "config": {"dataset": "synthetic ml-20m (seed 0)", "batch_size": BATCH, "max_len": MAX_LEN,
                         "negatives_per_position": NEGATIVES},
              "phases": phases, "summary": summary, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULTS)

    print(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
          f"1-min load average during the loader runs: {loaders['rust_threads_2']['load_average_1min']:.1f}")
    print(f"\n{'loader (B=256, L=200, 1 negative)':<38}{'sequences/s':>14}{'tokens/s':>16}{'batches':>9}")
    names = {"rust_threads_0": "Rust, in calling thread", "rust_threads_1": "Rust, 1 background thread",
             "rust_threads_2": "Rust, 2 background threads", "numpy_vectorised": "(b) numpy vectorised",
             "torch_dataloader_workers_0": "(a) torch per-sample, 0 workers",
             "torch_dataloader_workers_2": "(a) torch per-sample, 2 workers"}
    for key, label in names.items():
        r = loaders[key]
        print(f"{label:<38}{r['sequences_per_s']:>14,.0f}{r['tokens_per_s']:>16,.0f}{r['batches']:>9}")
    print(f"\nspeed-up, 1 thread:  {summary['speedup_vs_torch_per_sample_1_thread']:.1f}x vs (a) (target >= 20), "
          f"{summary['speedup_vs_numpy_1_thread']:.1f}x vs (b) (target >= 3)")
    print(f"speed-up, 2 threads: {summary['speedup_vs_torch_per_sample_2_workers']:.1f}x vs (a) with 2 workers, "
          f"{summary['speedup_vs_numpy_rust_2_threads']:.1f}x vs (b)")
    print(f"\n{'step':<34}{'seconds':>10}{'peak RSS MB':>13}{'x CSR':>8}   target")
    steps = [("synthesize ml-20m", phases["synth"]["synth_s"], "synth", "< 60 s"),
             ("prepare 20M-row ratings.csv", phases["prepare"]["prepare_s"], "prepare", "< 60 s"),
             ("cached load (mmap + checksums)", phases["load"]["load_s"], "load", "< 1 s")]
    for label, seconds, phase, target in steps:
        rss = phases[phase]["peak_rss_mb"]
        print(f"{label:<34}{seconds:>10.2f}{rss:>13.0f}{rss / csr_mb:>8.2f}   {target}, memory <= 3x")
    print(f"\nCSR arrays: {csr_mb:.0f} MB; written {RESULTS}")


if __name__ == "__main__":
    main()
