"""Recommendations and exports of finished runs: `seqrec-fast recommend`, `seqrec_fast.load`,
`seqrec-fast export` (loaded where seqrec_fast cannot be imported), and their bad inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import torch

import seqrec_fast
from seqrec_fast.cli import main
from seqrec_fast.models import MODELS
from seqrec_fast.serving.id_map import IdMap
from seqrec_fast.serving.recommender import gather_rows, last_windows
from seqrec_fast.train.evaluation import full_ranking_candidates
from seqrec_fast.train.metrics import rank_counts

SMALL = ["--hidden-size", "16", "--num-heads", "2", "--inner-size", "32", "--max-len", "12", "--no-progress",
         "--threads", "1", "--fast-dev-run"]


def train(out: Path, data: str, model: str) -> Path:
    assert main(["train", "--data", data, "--out", str(out), "--model", model, *SMALL]) == 0
    return out


@pytest.fixture(scope="module")
def ml100k_run(tmp_path_factory, ml100k_dir) -> Path:
    return train(tmp_path_factory.mktemp("ml100k") / "sasrec", str(ml100k_dir), "sasrec")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {name: train(root / name, "synthetic:tiny", name) for name in sorted(MODELS)}


@pytest.fixture(scope="module")
def adt_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adt") / "search"
    assert main(["search", "adt", "--data", "synthetic:tiny", "--out", str(out), *SMALL]) == 0
    assert main(["retrain", str(out), "--fast-dev-run"]) == 0
    return out


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else pa_csv.read_csv(
        path, convert_options=pa_csv.ConvertOptions(column_types={"user": pa.string(), "item": pa.string()}))


# ------------------------------------------------------------------------------------ helpers
def test_windows_keep_the_last_items_left_padded_and_rows_gather_as_csr():
    offsets, items = np.array([0, 3, 3, 8]), np.array([5, 6, 7, 1, 2, 3, 4, 9], dtype=np.int32)
    assert last_windows(offsets, items, 4).tolist() == [[0, 5, 6, 7], [0, 0, 0, 0], [2, 3, 4, 9]]
    batch_offsets, batch_items = gather_rows(offsets, items, np.array([2, 0]))
    assert batch_offsets.tolist() == [0, 5, 8] and batch_items.tolist() == [1, 2, 3, 4, 9, 5, 6, 7]
    assert batch_items.dtype == np.int64


def test_id_maps_find_text_and_integer_forms_and_refuse_what_is_not_an_id():
    ints = IdMap(pa.array([10, 7, 300]), 3, first=1)
    assert ints.indices([7, "7", np.int64(300), "007", 11]).tolist() == [2, 2, 3, -1, -1]
    assert ints.originals_of(np.array([3, 1])).to_pylist() == [300, 10]
    texts = IdMap(pa.array(["a", "7"], type=pa.large_string()), 2, first=0)
    assert texts.indices(["7", 7, "b"]).tolist() == [1, 1, -1]
    assert IdMap(None, 3, first=1).indices([1, 3, 4]).tolist() == [1, 3, -1]


# ------------------------------------------------------------------------------------ recommend
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_recommend_gives_every_ml100k_user_ten_unseen_items_of_the_log(ml100k_run, tmp_path, suffix, capsys):
    out = tmp_path / f"recs{suffix}"
    assert main(["recommend", str(ml100k_run), "--k", "10", "--out", str(out), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 943 and summary["recommendations"] == 9430
    table = read_table(out)
    assert table.num_rows == 9430 and table.column_names == ["user", "rank", "item", "score"]
    model = seqrec_fast.load(ml100k_run)
    dataset = model.dataset
    assert set(table.column("user").to_pylist()) == set(model.user_ids) and len(model.user_ids) == 943
    assert set(table.column("item").to_pylist()) <= set(model.item_ids)
    histories = {user: set(model.items.originals_of(dataset.sequence(index)).to_pylist())
                 for index, user in enumerate(model.user_ids)}
    users, items, ranks = (table.column(name).to_pylist() for name in ("user", "item", "rank"))
    assert not any(item in histories[user] for user, item in zip(users, items))
    assert ranks[:10] == list(range(1, 11))
    scores = table.column("score").to_numpy()
    assert all(np.all(np.diff(scores[i:i + 10]) <= 0) for i in range(0, len(scores), 10))


def test_first_users_list_is_what_evaluation_ranks_first(ml100k_run, tmp_path):
    """The recommend path and the evaluation path rank the same candidates with the same scores:
    on the test split's inputs, the test target's place in the recommended full ranking is the
    number of candidates evaluation counts above it; and the CLI's list for the first user is
    what recommending its whole sequence gives."""
    model = seqrec_fast.load(ml100k_run, device="cpu")
    dataset = model.dataset
    batch = next(iter(dataset.eval_loader(split="test", batch_size=8, max_len=model.max_len)))
    user, target = int(batch["users"][0]), int(batch["targets"][0])
    inputs = torch.from_numpy(batch["inputs"][:1])
    scores = model.model.predict(inputs).float()
    history_end = batch["history_offsets"][1]
    candidates = full_ranking_candidates(1, scores.shape[1], batch["history_offsets"][:2],
                                         batch["history_items"][:history_end], True, scores.device)
    counts = rank_counts(scores, torch.tensor([target]), candidates)
    evaluation_top = scores.masked_fill(~candidates, float("-inf")).topk(10).indices[0].tolist()

    start, test_pos = int(dataset.offsets[user]), int(dataset.test_pos[user])
    prefix = model.items.originals_of(dataset.items[start:test_pos]).to_pylist()
    ranked = [item for item, _ in model.recommend([prefix], k=dataset.n_items)[0]]
    assert ranked[:10] == model.items.originals_of(np.array(evaluation_top)).to_pylist()
    target_id = model.items.originals_of(np.array([target])).to_pylist()[0]
    assert ranked.index(target_id) == int(counts.greater[0]) and int(counts.ties[0]) == 0

    out = tmp_path / "recs.jsonl"
    assert main(["recommend", str(ml100k_run), "--out", str(out), "--no-progress"]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    whole = model.items.originals_of(dataset.sequence(0)).to_pylist()
    expected = model.recommend([whole], k=10)[0]
    assert first["user"] == model.user_ids[0]
    assert first["items"] == [item for item, _ in expected]
    np.testing.assert_allclose(first["scores"], [score for _, score in expected], rtol=1e-6)


def test_users_file_and_kept_history(ml100k_run, tmp_path):
    model = seqrec_fast.load(ml100k_run, device="cpu")
    chosen = model.user_ids[5:8]
    (tmp_path / "users.txt").write_text("\n".join(chosen) + "\n\n")
    out = tmp_path / "few.csv"
    assert main(["recommend", str(ml100k_run), "--users", str(tmp_path / "users.txt"), "--k", "50",
                 "--no-filter-history", "--out", str(out), "--no-progress"]) == 0
    table = read_table(out)
    assert table.column("user").to_pylist() == [user for user in chosen for _ in range(50)]
    seen = [set(model.items.originals_of(model.dataset.sequence(5 + i)).to_pylist()) for i in range(3)]
    rows = zip(table.column("user").to_pylist(), table.column("item").to_pylist())
    assert any(item in seen[chosen.index(user)] for user, item in rows)  # the top 50 of a kept history


def test_new_sequences_skip_unknown_ids_by_line(ml100k_run, tmp_path, capsys):
    model = seqrec_fast.load(ml100k_run, device="cpu")
    a, b, c = model.item_ids[:3]
    (tmp_path / "new.txt").write_text(f"{a} {b}\n{c},nope, {a}\n\nghost\n")
    out = tmp_path / "new.jsonl"
    assert main(["recommend", str(ml100k_run), "--sequences", str(tmp_path / "new.txt"), "--k", "5",
                 "--out", str(out), "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["rows"] == 2 and summary["skipped_sequences"] == 2 and summary["unknown_items"] == 2
    assert f"{tmp_path / 'new.txt'} line 2: 1 unknown item id(s) skipped ('nope')" in captured.err
    assert "line 3: empty sequence skipped" in captured.err and "line 4: 1 unknown" in captured.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [1, 2]
    assert [item for item, _ in model.recommend([[c, a]], k=5)[0]] == lines[1]["items"]
    assert not {a, b} & set(lines[0]["items"])
    parquet = tmp_path / "new.parquet"
    pq.write_table(pa.table({"name": ["x", "y"], "items": [[a, b], [c, "nope", a]]}), parquet)
    assert main(["recommend", str(ml100k_run), "--sequences", str(parquet), "--k", "5", "--out",
                 str(tmp_path / "p.jsonl"), "--no-progress"]) == 0
    assert "new.parquet row 2: 1 unknown item id(s) skipped" in capsys.readouterr().err
    assert [json.loads(line)["items"] for line in (tmp_path / "p.jsonl").read_text().splitlines()] == \
        [line["items"] for line in lines]


def test_python_api_scores_in_original_ids(tiny_runs):
    model = seqrec_fast.load(tiny_runs["sasrec"], device="cpu")
    scores = model.score([[3, 4, 5], [7]])
    assert scores.shape == (2, len(model.item_ids)) and scores.dtype == np.float32
    top = model.recommend([[3, 4, 5]], k=4)[0]
    best = [model.item_ids[j] for j in np.argsort(-scores[0]) if model.item_ids[j] not in (3, 4, 5)][:4]
    assert [item for item, _ in top] == best
    with pytest.warns(UserWarning, match=r"sequence 1: unknown item ids \[999\]"):
        rows = model.score([[3], [999]])
    assert np.isnan(rows[1]).all() and not np.isnan(rows[0]).any()


# ------------------------------------------------------------------------------------ bad input
def test_bad_run_directories_and_files_are_one_clear_line(ml100k_run, tmp_path, capsys):
    def error_of(*args) -> str:
        assert main(["recommend", *map(str, args), "--no-progress"]) == 2
        return capsys.readouterr().err.strip()

    out = tmp_path / "r.csv"
    (tmp_path / "empty").mkdir()
    assert "holds no run of seqrec-fast" in error_of(tmp_path / "empty", "--out", out)
    assert "no such run directory" in error_of(tmp_path / "missing", "--out", out)
    unfinished = tmp_path / "unfinished"
    assert main(["train", "--data", "synthetic:tiny", "--out", str(unfinished), *SMALL]) == 0
    (unfinished / "result.json").unlink()
    message = error_of(unfinished, "--out", out)
    assert "holds no finished model (no result.json; its best checkpoint so far)" in message
    assert f"seqrec-fast train --resume --out {unfinished}" in message
    (tmp_path / "users.txt").write_text("1\n2\nnobody\n")
    message = error_of(ml100k_run, "--users", tmp_path / "users.txt", "--out", out)
    assert message.endswith(f"{tmp_path / 'users.txt'} line 3: unknown user id 'nobody': not a user of the "
                            "run's dataset ml-100k")
    (tmp_path / "binary.txt").write_bytes(b"1 2\n3 \xff\xfe\n")
    assert f"{tmp_path / 'binary.txt'} line 2: not UTF-8 text" in error_of(
        ml100k_run, "--sequences", tmp_path / "binary.txt", "--out", out)
    pq.write_table(pa.table({"items": ["1 2"]}), tmp_path / "flat.parquet")
    assert "expected one column of lists of item ids, found no column of lists" in error_of(
        ml100k_run, "--sequences", tmp_path / "flat.parquet", "--out", out)
    pq.write_table(pa.table({"items": [["1"], None]}), tmp_path / "null.parquet")
    assert "null.parquet row 2: column 'items' is null" in error_of(
        ml100k_run, "--sequences", tmp_path / "null.parquet", "--out", out)
    (tmp_path / "fake.parquet").write_text("1 2 3\n")
    assert "fake.parquet: not a readable Parquet file" in error_of(
        ml100k_run, "--sequences", tmp_path / "fake.parquet", "--out", out)
    assert "the suffix names the format" in error_of(ml100k_run, "--out", tmp_path / "r.txt")
    assert not out.exists()  # nothing half-written


def test_a_search_without_its_retraining_is_refused(adt_run, tmp_path, capsys):
    search = tmp_path / "copy"
    search.mkdir()
    for name in ("config.yaml", "spec.json", "result.json", "dataset.json"):
        (search / name).write_bytes((adt_run / name).read_bytes())
    assert main(["export", str(search), "--out", str(tmp_path / "exp")]) == 2
    assert f"run `seqrec-fast retrain {search}` first" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


# ------------------------------------------------------------------------------------ export
PLAIN_TORCH = textwrap.dedent("""
    import json, sys

    class NoSeqrecFast:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "seqrec_fast":
                raise ImportError("seqrec_fast is not installed here")

    sys.meta_path.insert(0, NoSeqrecFast())
    import pyarrow.parquet as pq
    import torch

    jobs = json.loads(sys.stdin.read())
    results = {}
    for directory, sequences in jobs.items():
        program = torch.export.load(f"{directory}/model.pt2").module()
        item_ids = pq.read_table(f"{directory}/item_ids.parquet")["item_id"].to_pylist()
        index = {item: j + 1 for j, item in enumerate(item_ids)}
        max_len = json.load(open(f"{directory}/model_card.json"))["input"]["max_len"]
        rows = [[index[item] for item in sequence][-max_len:] for sequence in sequences]
        inputs = torch.tensor([[0] * (max_len - len(row)) + row for row in rows])
        results[directory] = program(inputs).tolist()
    assert not any(name.startswith("seqrec_fast") for name in sys.modules)
    print(json.dumps(results))
""")


def test_exports_score_as_the_run_in_plain_torch(tiny_runs, adt_run, tmp_path, capsys):
    runs = {**tiny_runs, "adt": adt_run}
    sequences = [[5, 9, 14, 2], [7], list(range(1, 40))]
    expected, jobs = {}, {}
    for name, run in runs.items():
        out = tmp_path / f"export-{name}"
        assert main(["export", str(run), "--out", str(out), "--json"]) == 0
        card = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert card["check"]["max_abs_difference"] <= 1e-5 and card["model"]["model"]["name"] in MODELS
        assert {"valid", "test"} <= set(card["metrics"]) and card["data"]["items"] == 150
        expected[str(out)] = seqrec_fast.load(run, device="cpu").score(sequences)
        jobs[str(out)] = sequences
    assert json.loads((tmp_path / "export-adt" / "model_card.json").read_text())["model"]["algorithm"] == "adt"
    done = subprocess.run([sys.executable, "-c", PLAIN_TORCH], input=json.dumps(jobs), capture_output=True,
                          text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    for directory, scores in json.loads(done.stdout).items():
        np.testing.assert_allclose(np.array(scores), expected[directory], atol=1e-5, rtol=0)


def test_export_replaces_an_earlier_export_only(tiny_runs, tmp_path, capsys):
    out = tmp_path / "exp"
    run = tiny_runs["gru4rec"]
    assert main(["export", str(run), "--out", str(out)]) == 0
    first = (out / "model_card.json").read_text()
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["item_ids.parquet", "model.pt2", "model_card.json"]
    assert json.loads(first)["model"] == json.loads((out / "model_card.json").read_text())["model"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "other")]) == 2
    assert "holds no earlier export" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_the_readme_serving_example_runs_in_plain_torch(ml100k_run, tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                   if "torch.export.load" in block)
    assert main(["export", str(ml100k_run), "--out", str(tmp_path / "export" / "sasrec")]) == 0
    blocker = PLAIN_TORCH.split("import pyarrow")[0]
    done = subprocess.run([sys.executable, "-c", blocker + example], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    expected = seqrec_fast.load(ml100k_run, device="cpu").recommend([["50", "172", "133"]], k=10)[0]
    assert done.stdout.strip() == str([item for item, _ in expected])
