"""NASR's Table 2 on a dataset: GRU4Rec, 16 layers of each pure op, random hybrids and NASR's
hybrid, trained alike (width, learning rate, batch, early stopping), and whether NASR's proxy
ranks the hybrids as their retraining does.

    python benchmarks/bench_nasr.py --data ../shared/data/ml-100k [--seeds 42,1,2] [--random 3] \\
        [--out runs/bench-nasr] [--name NAME] [--threads 2] [--train="--epochs 50"] [-- MORE SEARCH OPTIONS]

Per seed it runs the documented commands (NASR's search first, then the rest)

    seqrec-fast train --model gru4rec --data D --seed S --json [protocol]
    seqrec-fast search nasr --data D --out RUN/OP --architecture OP*16 --seed S --json [protocol]
    seqrec-fast retrain RUN/OP --json                      (each pure op, each random hybrid)
    seqrec-fast search nasr --data D --out RUN/nasr --seed S --json [protocol] [options]
    seqrec-fast retrain RUN/nasr --json

and reads back what finished, resuming what was interrupted. Each row: test NDCG@10/20 and
HR@10/20, validation NDCG@10, parameters, milliseconds per training step, and for NASR the
supernets' and the selection's wall time. Per seed, Kendall's tau between NASR's proxy (minus
the summed block selection losses of each hybrid, `nasr.search.proxy_losses`) and the retrained
validation NDCG@10 of the 8 full hybrids (4 pure, the random ones, NASR's). Writes
benchmarks/results/nasr_<dataset>[_<name>].json with every row, mean and sd per variant, and
whether NASR beats the best pure model and the random hybrids fall below it."""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
from pathlib import Path

import numpy as np

from _results import RESULTS, Runs, machine, mean_sd, write_result

BATCH = 256  # targets per step
PROTOCOL = ["--hidden-size", "64", "--lr", "1e-3", "--batch-size", str(BATCH), "--max-len", "50"]
PURE = ("tcn12", "tcn14", "trm4", "trm8")
LAYERS = 16
METRICS = ("ndcg@10", "ndcg@20", "hr@10", "hr@20")


def random_hybrid(seed: int, index: int) -> list[str]:
    rng = np.random.default_rng([seed, index])
    return [PURE[i] for i in rng.integers(0, len(PURE), LAYERS)]


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties in either list counted as neither concordant nor discordant)."""
    concordant = discordant = ties_x = ties_y = 0
    for (a, b), (c, d) in itertools.combinations(zip(x, y), 2):
        sx, sy = np.sign(a - c), np.sign(b - d)
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            ties_x += 1
        elif sy == 0:
            ties_y += 1
        elif sx == sy:
            concordant += 1
        else:
            discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else 0.0


class Table:
    def __init__(self, args: argparse.Namespace):
        self.root = Path(args.out)
        self.runs = Runs(self.root, ["--data", args.data, *PROTOCOL, *shlex.split(args.train)], args.threads)

    def train_gru4rec(self, seed: int) -> tuple[dict, Path]:
        out = self.root / f"seed{seed}" / "gru4rec"
        self.runs.finish(["train"], out, seed, ["--model", "gru4rec"], started="checkpoints")
        return json.loads((out / "result.json").read_text()), out

    def search(self, name: str, seed: int, options: list[str]) -> tuple[dict, dict, Path]:
        out = self.root / f"seed{seed}" / name
        self.runs.finish(["search", "nasr"], out, seed, options)
        self.runs.retrain(out)
        return (json.loads((out / "result.json").read_text()), json.loads((out / "retrain" / "result.json").read_text()),
                out)

    def proxy_ranking(self, seed: int, nasr_dir: Path, dataset, hybrid_rows: list[dict]) -> dict:
        """Kendall's tau between NASR's proxy and the hybrids' retrained validation NDCG@10; the
        proxies, which score every block path once per hybrid, are kept beside the seed's runs."""
        from seqrec_fast.algorithms.nasr.search import proxy_losses

        path = self.root / f"seed{seed}" / "proxy.json"
        names = [r["name"] for r in hybrid_rows]
        cached = json.loads(path.read_text()) if path.is_file() else {}
        if cached.get("hybrids") != names:
            proxies = [-sum(proxy_losses(nasr_dir, dataset, r["layers"])) for r in hybrid_rows]
            write_result(path, {"hybrids": names, "proxy": proxies})
        else:
            proxies = cached["proxy"]
        return {"tau": kendall_tau(proxies, [r["valid_ndcg@10"] for r in hybrid_rows]), "hybrids": names,
                "proxy": proxies}


def parameters(run_dir: Path) -> int:
    from seqrec_fast import load

    return sum(p.numel() for p in load(run_dir, device="cpu").model.parameters())


def row(variant: str, seed: int, result: dict, run_dir: Path, layers: list[str] | None, **extra) -> dict:
    return {"variant": variant, "seed": seed, **{f"test_{m}": result["test"][m] for m in METRICS},
            "valid_ndcg@10": result["valid"]["ndcg@10"], "best_epoch": result["best_epoch"],
            "params": parameters(run_dir), "ms_per_step": round(1000 * BATCH / result["train_samples_per_s"], 2),
            "elapsed_s": result["elapsed_s"], "layers": layers, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--random", type=int, default=3, help="random hybrids per seed")
    parser.add_argument("--out", default="runs/bench-nasr")
    parser.add_argument("--name", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", default="", help="more training options for every variant, quoted")
    parser.add_argument("extra", nargs="*", help="more NASR search options, after --")
    args = parser.parse_args()
    from seqrec_fast.train.data_source import open_dataset

    dataset = open_dataset(str(Path(args.data).resolve()) if Path(args.data).exists() else args.data)
    table = Table(args)
    rows, taus = [], {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        # NASR first: its search is the longest row and the one the others are measured against.
        found, retrained, nasr_dir = table.search("nasr", seed, args.extra)
        blocks = found["architecture"]["blocks"]
        rows.append(row("nasr", seed, retrained, nasr_dir, found["architecture"]["layers"], name="nasr",
                        supernet_s=sum(b["train_s"] for b in blocks), selection_s=sum(b["selection_s"] for b in blocks)))
        result, out = table.train_gru4rec(seed)
        rows.append(row("gru4rec", seed, result, out, None))
        hybrids = [(op, [op] * LAYERS) for op in PURE]
        hybrids += [(f"random{k}", random_hybrid(seed, k)) for k in range(args.random)]
        for name, layers in hybrids:
            _, retrained, out = table.search(name, seed, ["--architecture", ",".join(layers)])
            rows.append(row("pure" if name in PURE else "random", seed, retrained, out, layers, name=name))
        hybrid_rows = [r for r in rows if r["seed"] == seed and r["layers"] is not None]
        taus[seed] = table.proxy_ranking(seed, nasr_dir, dataset, hybrid_rows)
        print(f"seed {seed}: NASR chose {','.join(found['architecture']['layers'])}; Kendall tau {taus[seed]['tau']:.3f}",
              flush=True)
    groups = {"gru4rec": [r for r in rows if r["variant"] == "gru4rec"], "nasr": [r for r in rows if r["variant"] == "nasr"],
              "random": [r for r in rows if r["variant"] == "random"]}
    groups.update({op: [r for r in rows if r.get("name") == op] for op in PURE})
    means = {name: mean_sd(group) for name, group in groups.items() if group}
    best_pure = max(PURE, key=lambda op: means[op]["test_ndcg@10"]["mean"])
    claims = {"best_pure": best_pure,
              "nasr_beats_best_pure": means["nasr"]["test_ndcg@10"]["mean"] > means[best_pure]["test_ndcg@10"]["mean"],
              "random_below_best_pure": None if "random" not in means
              else means["random"]["test_ndcg@10"]["mean"] < means[best_pure]["test_ndcg@10"]["mean"],
              "mean_kendall_tau": statistics.fmean(t["tau"] for t in taus.values())}
    print(f"\n{'variant':<9} {'NDCG@10':>16} {'NDCG@20':>16} {'HR@10':>16} {'HR@20':>16} {'params':>9} {'ms/step':>8}")
    for name, m in means.items():
        cell = lambda key: f"{m[key]['mean']:.4f} ± {m[key]['sd']:.4f}"
        print(f"{name:<9} {cell('test_ndcg@10'):>16} {cell('test_ndcg@20'):>16} {cell('test_hr@10'):>16} "
              f"{cell('test_hr@20'):>16} {m['params']['mean']:>9.0f} {m['ms_per_step']['mean']:>8.1f}")
    print(json.dumps(claims, indent=2))
    name = Path(args.data).name + (f"_{args.name}" if args.name else "")
    write_result(RESULTS / f"nasr_{name}.json", {"machine": machine(), "data": args.data, "protocol": PROTOCOL,
                                                 "train": args.train, "extra": args.extra, "rows": rows,
                                                 "means": means, "kendall_tau": taus, "claims": claims})


if __name__ == "__main__":
    main()
