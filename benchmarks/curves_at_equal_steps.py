"""Validation NDCG@10 of our runs and a RecBole run side by side at equal optimizer steps.

Our epochs and RecBole's hold different numbers of optimizer steps (BERT4Rec at stride 5: about
92 batches of 256 masked targets, against RecBole's 380 batches of 256 prefixes), so comparing
their curves epoch by epoch compares different amounts of training. This reads each of our run
directories' metrics.jsonl (which logs the step) and a recbole_baseline.py work directory's
history.json, and prints each curve's validation NDCG@10 at the last evaluation at or before each
step count.

    python benchmarks/curves_at_equal_steps.py --runs RUN_DIR [RUN_DIR ...] \\
        --recbole-history WORK_DIR/history.json --data ../shared/data/ml-100k --name NAME

RecBole's steps per epoch are its training prefixes (every user's training items but the first:
interactions minus three per user under leave-one-out) over its batch of 256. Writes
benchmarks/results/curves_<name>.json."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from _results import RESULTS, write_result

RECBOLE_BATCH = 256
STEPS = (500, 1000, 2000, 3000, 5000, 8000, 10000, 13000, 15000, 20000)


def recbole_steps_per_epoch(inter_file: Path) -> int:
    users: dict[str, int] = {}
    with inter_file.open() as lines:
        next(lines)  # the header names the fields
        for line in lines:
            user = line.split("\t", 1)[0]
            users[user] = users.get(user, 0) + 1
    prefixes = sum(max(count - 3, 0) for count in users.values())
    return math.ceil(prefixes / RECBOLE_BATCH)


def ours(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(int(row["step"]), float(row["valid"]["ndcg@10"])) for row in rows if "valid" in row]


def recbole(history_file: Path, steps_per_epoch: int) -> list[tuple[int, float]]:
    history = json.loads(history_file.read_text())
    return [(int(epoch["epoch"]) * steps_per_epoch, float(epoch["valid_ndcg@10"])) for epoch in history["epochs"]]


def at(curve: list[tuple[int, float]], step: int) -> dict | None:
    """The last evaluation at or before ``step`` and the best one up to it; None past the curve."""
    if not curve or curve[-1][0] < step:
        return None
    seen = [score for s, score in curve if s <= step]
    return {"ndcg@10": seen[-1], "best so far": max(seen)} if seen else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="our run directories")
    parser.add_argument("--recbole-history", required=True, help="a recbole_baseline.py work directory's history.json")
    parser.add_argument("--data", required=True, help="the ml-100k folder RecBole read (for its steps per epoch)")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    data = Path(args.data)
    steps_per_epoch = recbole_steps_per_epoch(data / f"{data.name}.inter")
    curves = {str(run): ours(Path(run)) for run in args.runs}
    curves["RecBole"] = recbole(Path(args.recbole_history), steps_per_epoch)
    table = {name: {step: at(curve, step) for step in STEPS} for name, curve in curves.items()}
    print("| run | " + " | ".join(f"{step:,} steps" for step in STEPS) + " |")
    print("|---|" + "---|" * len(STEPS))
    for name, row in table.items():
        cells = [f"{cell['ndcg@10']:.4f} ({cell['best so far']:.4f})" if cell else "" for cell in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    write_result(RESULTS / f"curves_{args.name}.json",
                 {"command": " ".join(sys.argv), "recbole_steps_per_epoch": steps_per_epoch,
                  "at_steps": {name: {str(step): cell for step, cell in row.items()} for name, row in table.items()},
                  "curves": curves})
    return 0


if __name__ == "__main__":
    sys.exit(main())
