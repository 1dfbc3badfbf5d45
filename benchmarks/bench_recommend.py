"""Throughput of `seqrec-fast recommend`: users per second for the top 10 of every user of a
dataset, written to Parquet, on ml-100k (the real one) and the synthetic ml-20m preset (138,493
users, 26,744 items).

Each dataset gets a SASRec at the default size (64 wide, 2 layers, max_len 50) from a fast dev
run (two training batches: the weights' quality does not change the work of ranking them); then
`recommend_to_file` runs over all users `--repeats` times per thread count, and the median is
reported, beside the time of the ranking alone (scores, candidates, top k: no file written).

    python benchmarks/bench_recommend.py --data ../shared/data/ml-100k [--threads 1,2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, run_json, write_result  # noqa: E402

from seqrec_fast.serving.recommend import recommend_to_file  # noqa: E402
from seqrec_fast.serving.recommender import load  # noqa: E402

K = 10


def trained_run(data: str, run_dir: Path, log: Path) -> Path:
    if not (run_dir / "result.json").is_file():
        run_json([sys.executable, "-m", "seqrec_fast.cli", "train", "--data", data, "--model", "sasrec", "--out",
                  str(run_dir), "--fast-dev-run", "--no-progress", "--overwrite", "--json"], log)
    return run_dir


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def measure(name: str, data: str, workdir: Path, threads: list[int], device: str, repeats: int) -> list[dict]:
    run = trained_run(data, workdir / name, workdir / f"{name}.log")
    recommender = load(run, device=device)
    users = recommender.dataset.n_users
    rows = []
    for count in threads:
        torch.set_num_threads(count)

        def rank_only():
            for _ in recommender.recommend_users(k=K):
                pass  # each batch's top k is copied to the host: the timing includes the device's work

        rank_only()  # warm-up: first-call allocations and op loading
        ranking = statistics.median(timed(rank_only) for _ in range(repeats))
        whole = statistics.median(timed(lambda: recommend_to_file(
            recommender, workdir / f"{name}.parquet", k=K, progress=False)) for _ in range(repeats))
        row = {"dataset": name, "users": users, "items": recommender.dataset.n_items, "threads": count,
               "device": str(recommender.device), "k": K, "repeats": repeats,
               "recommend_s": round(whole, 3), "users_per_s": round(users / whole, 1),
               "ranking_only_s": round(ranking, 3), "ranking_users_per_s": round(users / ranking, 1)}
        print(f"{name:>8}  {users:>7} users  {count} thread(s)  recommend {whole:7.2f} s  "
              f"{row['users_per_s']:>9.0f} users/s   ranking alone {row['ranking_users_per_s']:>9.0f} users/s",
              flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ml-100k folder (RecBole's atomic files)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="runs and outputs (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="result JSON (default: results/bench_recommend_DEVICE.json)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [*measure("ml-100k", str(Path(args.data).resolve()), workdir, threads, args.device, args.repeats),
                *measure("ml-20m", "synthetic:ml-20m", workdir, threads, args.device, args.repeats)]
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    out = Path(args.out) if args.out else RESULTS / f"bench_recommend_{args.device}.json"
    write_result(out, {"benchmark": "recommend", "model": "sasrec (hidden 64, 2 layers, max_len 50)",
                       "machine": machine(device=device, torch=torch.__version__), "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
