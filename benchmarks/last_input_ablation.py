"""How much a trained next-item model leans on the user's most recent item, on validation and test.

Scores a trained model's best checkpoint on both splits twice: with its input as evaluation builds
it, and with the most recent item removed (the sequence one item shorter). On validation that item
is the user's last training item; on test it is the validation item, which training never saw. A
model whose validation gains far more from that item than its test does has learnt something about
the user's own training sequence that does not carry over to test, so its validation score
overstates its test score. It also reports how much of the top 10 is the user's history.

Our runs (this package's environment):

    python benchmarks/last_input_ablation.py --runs RUN_DIR [RUN_DIR ...] --name NAME

RecBole's (in the environment of recbole_baseline.py, with its work directory):

    /work/recbole-venv/bin/python benchmarks/last_input_ablation.py --recbole-work-dir DIR \\
        --recbole-model BERT4Rec --data-path ../shared/data --name NAME

Writes benchmarks/results/last_input_<name>.json. Reading test here is a diagnosis of finished
models, never a selection."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from _results import RESULTS, machine, write_result  # puts this checkout on the path in RecBole's venv
from seqrec_fast.train.metrics import per_user_metrics, rank_counts

TOP = 10


def ndcg_at_10(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-user NDCG@10 over every item but padding (column 0), as our evaluation ranks (ties
    counted against the target)."""
    candidates = torch.ones_like(scores, dtype=torch.bool)
    candidates[:, 0] = False
    counts = rank_counts(scores, targets, candidates)
    return torch.from_numpy(per_user_metrics(counts, cutoffs=(TOP,), ties="pessimistic")[f"ndcg@{TOP}"])


def top_share(scores: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Per-user share of the top 10 that ``seen`` ([B, V] bool) marks."""
    scores = scores.clone()
    scores[:, 0] = -torch.inf
    return seen.gather(1, scores.topk(TOP, dim=1).indices).double().mean(1)


def summary(per_user: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    return {key: round(float(torch.cat(values).mean()), 5) for key, values in per_user.items()}


# ------------------------------------------------------------------------------------ our runs
def drop_most_recent(inputs: torch.Tensor) -> torch.Tensor:
    """Left-padded inputs without their last column's item (one more column of padding)."""
    return torch.cat([torch.zeros_like(inputs[:, :1]), inputs[:, :-1]], dim=1)


def ours(run_dir: Path) -> dict:
    from seqrec_fast.train.config import build_config
    from seqrec_fast.train.data_source import open_dataset
    from seqrec_fast.train.evaluation import history_mask, load_trained_model

    config = build_config(run_dir / "config.yaml")
    dataset = open_dataset(config.data)
    model = load_trained_model(config.model, run_dir / "checkpoints" / "best.pt", dataset.n_items).eval()
    row = {"run": str(run_dir), "model": config.model.name, "seed": config.seed}
    for split in ("valid", "test"):
        per_user: dict[str, list[torch.Tensor]] = {"ndcg@10": [], "ndcg@10 without the most recent item": [],
                                                   "top-10 share of the history": []}
        loader = dataset.eval_loader(split=split, batch_size=512, max_len=config.model.max_len,
                                     n_sampled_negatives=0, negative_sampler="uniform", seed=0, rank=0, world_size=1)
        with torch.no_grad():
            for batch in loader:
                inputs, targets = torch.from_numpy(batch["inputs"]), torch.from_numpy(batch["targets"]).long()
                scores = model.predict(inputs).float()
                per_user["ndcg@10"].append(ndcg_at_10(scores, targets))
                per_user["ndcg@10 without the most recent item"].append(
                    ndcg_at_10(model.predict(drop_most_recent(inputs)).float(), targets))
                seen = history_mask(len(targets), scores.shape[1], batch["history_offsets"], batch["history_items"], "cpu")
                per_user["top-10 share of the history"].append(top_share(scores, seen))
        row[split] = summary(per_user)
    return row


# ------------------------------------------------------------------------------------- RecBole's
def recbole(work_dir: Path, model_name: str, data_path: str) -> dict:
    import recbole_baseline
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    load = torch.load  # RecBole's checkpoints pickle its Config (see recbole_baseline.py)
    torch.load = lambda *a, **k: load(*a, **{"weights_only": False, **k})
    history = json.loads((work_dir / recbole_baseline.HISTORY).read_text())
    seed = int(history["effective_config"]["seed"])
    args = argparse.Namespace(model=model_name, data_path=data_path, seed=seed, work_dir=str(work_dir))
    config = Config(model=model_name, dataset="ml-100k", config_dict=recbole_baseline.recbole_config(args))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset)
    model.load_state_dict(torch.load(work_dir / recbole_baseline.BEST)["state_dict"])
    model.eval()
    # each user's items in time order: a split's history is everything before its target
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    order = np.lexsort((inter[dataset.time_field].numpy(), users))
    users, items = users[order], inter[dataset.iid_field].numpy()[order]
    starts = np.searchsorted(users, np.arange(users.max() + 2))
    best = recbole_baseline.best_epoch(history)
    row = {"run": str(work_dir), "model": model_name, "seed": seed, "checkpoint_epoch": best["epoch"]}
    for split, data in (("valid", valid_data), ("test", test_data)):
        per_user: dict[str, list[torch.Tensor]] = {"ndcg@10": [], "ndcg@10 without the most recent item": [],
                                                   "top-10 share of the history": []}
        with torch.no_grad():
            for interaction, _, _, targets in data:
                scores = model.full_sort_predict(interaction).view(len(targets), -1)
                per_user["ndcg@10"].append(ndcg_at_10(scores, targets))
                seen = torch.zeros_like(scores, dtype=torch.bool)
                for r, (user, target) in enumerate(zip(interaction[dataset.uid_field].numpy(), targets.numpy())):
                    sequence = items[starts[user]:starts[user + 1]]
                    seen[r, torch.from_numpy(sequence[: int(np.flatnonzero(sequence == target)[0])])] = True
                per_user["top-10 share of the history"].append(top_share(scores, seen))
                sequences, lengths = interaction[model.ITEM_SEQ].clone(), interaction[model.ITEM_SEQ_LEN].clone()
                sequences[torch.arange(len(sequences)), lengths - 1] = 0  # right-padded: the last real column
                interaction.interaction[model.ITEM_SEQ], interaction.interaction[model.ITEM_SEQ_LEN] = sequences, lengths - 1
                per_user["ndcg@10 without the most recent item"].append(
                    ndcg_at_10(model.full_sort_predict(interaction).view(len(targets), -1), targets))
        row[split] = summary(per_user)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], help="our run directories (each scored from best.pt)")
    parser.add_argument("--recbole-work-dir", default=None, help="a recbole_baseline.py work directory")
    parser.add_argument("--recbole-model", default="BERT4Rec")
    parser.add_argument("--data-path", default=None, help="RecBole's: the folder holding ml-100k/")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    if bool(args.runs) == bool(args.recbole_work_dir):
        parser.error("give either --runs or --recbole-work-dir")
    if args.recbole_work_dir and not args.data_path:
        parser.error("--recbole-work-dir needs --data-path")
    torch.set_num_threads(1)
    if args.runs:
        rows = [ours(Path(run)) for run in args.runs]
    else:
        rows = [recbole(Path(args.recbole_work_dir), args.recbole_model, args.data_path)]
    for row in rows:
        print(json.dumps(row), flush=True)
    write_result(RESULTS / f"last_input_{args.name}.json",
                 {"command": " ".join(sys.argv), "rows": rows, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
