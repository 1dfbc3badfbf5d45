"""The README's ml-100k table: our rows (bench_ml100k.py's JSON) beside RecBole's finished rows.

    python benchmarks/ml100k_table.py [--models sasrec,gru4rec,bert4rec,nextitnet] [--name NAME]

For each backbone: the test NDCG@10 and HR@10 over seeds (mean ± sd and the 95% t interval of
the mean), the wall time to the best validation epoch, the pace in seconds per epoch, and the same
for RecBole's runs where results/recbole_<model>_ml-100k*.json holds a finished one (read now, so
that a RecBole run finished after our seeds shows)."""

from __future__ import annotations

import argparse
import json
import sys

from _results import RESULTS, t_interval
from bench_ml100k import recbole_rows, recbole_summary, result_path

DISPLAY = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec", "nextitnet": "NextItNet",
           "stosa": "STOSA"}


def ours(summary: dict, metric: str) -> str:
    if summary[metric]["n"] < 2:
        return f"{summary[metric]['mean']:.4f}"
    low, high = t_interval(summary[metric]["mean"], summary[metric]["sd"], summary[metric]["n"])
    return f"{summary[metric]['mean']:.4f} ± {summary[metric]['sd']:.4f} [{low:.4f}, {high:.4f}]"


def row(model: str, name: str) -> str:
    payload = json.loads(result_path(model, name).read_text())
    s, seeds = payload["summary"], len(payload["seeds"])
    cells = [DISPLAY[model], str(seeds), ours(s, "ndcg@10"), ours(s, "hr@10"),
             f"{s['time_to_best_s']['mean']:.0f}", f"{s['seconds_per_epoch']['mean']:.1f}"]
    finished = recbole_rows(model)
    if finished:
        recbole = recbole_summary(finished)
        runs = recbole["ndcg@10"]["n"]
        cells += [f"{recbole['ndcg@10']['mean']:.4f}" + (f" ({runs} runs)" if runs > 1 else ""),
                  f"{recbole['hr@10']['mean']:.4f}", f"{recbole['time_to_best_s']['mean']:,.0f}",
                  f"{recbole['seconds_per_epoch']['mean']:.0f}",
                  f"{recbole['time_to_best_s']['mean'] / s['time_to_best_s']['mean']:.0f}x"]
    else:
        cells += ["not run"] + [""] * 4
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sasrec,gru4rec,bert4rec,nextitnet")
    parser.add_argument("--name", default="", help="a variant set of bench_ml100k.py (default: the documented command)")
    args = parser.parse_args()
    print("| backbone | seeds | test NDCG@10 (mean ± sd [95% CI]) | test HR@10 | s to best | s / epoch "
          "| RecBole NDCG@10 | RecBole HR@10 | RecBole s to best | RecBole s / epoch | time to best, RecBole / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        print(row(model, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
