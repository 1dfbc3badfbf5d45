"""AdaRec on the tiny preset: causal ops and models, the Gumbel relaxation, the EMD flow, the cost
model against a module count, architecture steps on held-out batches only, a search killed and
resumed to the same result, retraining, serving the result, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ot
import pytest
import torch

from seqrec_fast import ops
from seqrec_fast.algorithms.adarec import search as adarec
from seqrec_fast.algorithms.adarec import teacher as teachers
from seqrec_fast.algorithms.adarec.cell_ops import build_op
from seqrec_fast.algorithms.adarec.distillation import Distillation, emd_flow, reweighted
from seqrec_fast.algorithms.adarec.options import AdaRecConfig
from seqrec_fast.algorithms.adarec.space import EDGES, OPS
from seqrec_fast.algorithms.adarec.student import AdaRecStudent, student_cost
from seqrec_fast.cli import main
from seqrec_fast.models import ModelConfig, build_model
from seqrec_fast.nas.cost import counted
from seqrec_fast.options import ConfigError, parse_options
from seqrec_fast.train.config import build_config
from seqrec_fast.train.trainer import Trainer

N_ITEMS = 40
QUIET = ["--no-progress", "--threads", "1"]
SMALL_TEACHERS = {"nextitnet": dict(hidden_size=32, num_layers=2, dilations=(1, 4)),
                  "sasrec": dict(hidden_size=32, num_layers=2, num_heads=2, inner_size=64)}


class Killed(Exception):
    pass


def student_config(width: int = 8, max_len: int = 20) -> ModelConfig:
    return ModelConfig(name="nextitnet", hidden_size=width, num_layers=2, max_len=max_len, dropout=0.0,
                       attn_dropout=0.0)


def random_cell(seed: int) -> tuple[str, ...]:
    return tuple(np.random.default_rng(seed).choice(OPS, EDGES).tolist())


def causal_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    supernet = AdaRecStudent(student_config(), N_ITEMS)
    supernet.train()
    supernet.mixed = True
    supernet._sample = torch.softmax(torch.randn(EDGES, len(OPS)), dim=-1)  # random weights, every op runs
    models = {"supernet": supernet, "student": AdaRecStudent(student_config(), N_ITEMS, random_cell(1)).eval()}
    for name, size in SMALL_TEACHERS.items():
        models[name] = build_model(ModelConfig(name=name, max_len=20, dropout=0.0, attn_dropout=0.0, **size),
                                   N_ITEMS).eval()
    return models


# ------------------------------------------------------------------------------------ causality
@pytest.mark.parametrize("name", OPS)
def test_every_op_reads_the_current_and_earlier_positions_only(name):
    torch.manual_seed(0)
    op = build_op(name, 6)
    x = torch.randn(3, 11, 6)
    for t in (0, 4, 9):
        changed = x.clone()
        changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:])
        torch.testing.assert_close(op(changed)[:, : t + 1], op(x)[:, : t + 1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["supernet", "student", "nextitnet", "sasrec"])
def test_supernet_student_and_teachers_never_see_later_items_and_ignore_padding(name):
    model = causal_models()[name]
    torch.manual_seed(1)
    inputs = torch.randint(1, N_ITEMS + 1, (4, 20))
    inputs[1, :7] = 0
    with torch.no_grad():
        hidden = model(inputs)
        for t in (2, 9, 15):
            changed = inputs.clone()
            changed[:, t + 1:] = torch.randint(1, N_ITEMS + 1, changed[:, t + 1:].shape)
            torch.testing.assert_close(model(changed)[:, : t + 1], hidden[:, : t + 1], rtol=1e-5, atol=1e-6)
        # The same 8 items behind 12 or 5 padding positions.
        items = inputs[:, -8:]
        long = model(torch.cat([torch.zeros(4, 12, dtype=torch.long), items], dim=1))
        short = model(torch.cat([torch.zeros(4, 5, dtype=torch.long), items], dim=1))
        torch.testing.assert_close(short[:, -8:], long[:, -8:], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the relaxation
def test_gumbel_forward_is_one_hot_per_edge_and_trains_every_architecture_weight():
    torch.manual_seed(0)
    model = AdaRecStudent(student_config(), N_ITEMS).train()
    inputs = torch.randint(1, N_ITEMS + 1, (3, 20))
    # A node fed by nothing but the zero op is all zeros, and every op maps zeros to zeros, so the
    # edges leaving it have no gradient to give: draw a sample whose node 0 is not the zero op.
    seed = next(s for s in range(100) if model.sample(0.7, torch.Generator().manual_seed(s))[0].argmax() != len(OPS) - 1)
    sample = model.sample(0.7, torch.Generator().manual_seed(seed))
    assert torch.equal(sample.detach().sum(dim=-1), torch.ones(EDGES))
    assert torch.equal((sample.detach() == 1).sum(dim=-1), torch.ones(EDGES, dtype=torch.long))
    sampled_only = model(inputs)  # a weight step: the sampled op of every edge alone
    model.mixed = True
    mixed = model(inputs)
    torch.testing.assert_close(mixed, sampled_only, rtol=1e-5, atol=1e-6)
    mixed.pow(2).mean().backward()
    assert model.alpha.grad is not None and bool((model.alpha.grad != 0).all())


# -------------------------------------------------------------------------------------- the EMD
def test_emd_flow_is_pots_exact_solution_within_its_constraints():
    rng = np.random.default_rng(0)
    distances = rng.random((8, 4))
    teacher_weights, student_weights = rng.random(8) + 0.1, rng.random(4) + 0.1
    flow = emd_flow(teacher_weights, student_weights, distances)
    a, b = teacher_weights / teacher_weights.sum(), student_weights / student_weights.sum()
    np.testing.assert_allclose(flow, ot.emd(a, b, distances), atol=1e-12)
    assert (flow >= 0).all()
    assert (flow.sum(axis=1) <= a + 1e-12).all() and (flow.sum(axis=0) <= b + 1e-12).all()
    assert flow.sum() == pytest.approx(min(a.sum(), b.sum()))
    # No other plan within the constraints moves the mass for less.
    uniform = np.outer(a, b)
    assert (flow * distances).sum() <= (uniform * distances).sum() + 1e-12

    weights = torch.full((4,), 0.25)
    updated = reweighted(weights, torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert updated.sum().item() == pytest.approx(1.0) and bool((updated[:-1] > updated[1:]).all())


def test_hidden_loss_is_the_flow_weighted_mean_distance_and_reweights_after_a_step():
    torch.manual_seed(0)
    student = AdaRecStudent(student_config(), N_ITEMS).train()
    teacher_model = build_model(ModelConfig(name="nextitnet", max_len=20, **SMALL_TEACHERS["nextitnet"]), N_ITEMS)
    distillation = Distillation(student, teachers.Teacher(teacher_model), AdaRecConfig(emb_loss=False,
                                                                                        pred_loss=False))
    inputs = torch.randint(1, N_ITEMS + 1, (3, 20))
    inputs[0, :5] = 0
    student.sample(1.0, torch.Generator().manual_seed(0))
    student(inputs)
    embedded, cells, _ = student.captured
    taught = distillation.teacher(inputs)
    valid = inputs > 0
    distances = torch.stack([torch.stack([(distillation.hidden_projection(c)[valid] - t[valid]).pow(2).mean()
                                          for c in cells]) for t in taught.layers])
    before = distillation.teacher_weights.clone()
    loss = distillation(inputs, torch.zeros_like(inputs))  # the targets play no part
    flow = ot.emd(before.double().numpy(), distillation.student_weights.new_full((2,), 0.5).double().numpy(),
                  distances.detach().double().numpy())
    expected = 0.5 * (torch.from_numpy(flow).float() * distances).sum() / flow.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    assert len(taught.layers) == 2  # NextItNet: every second of its 4 residual blocks
    assert not torch.equal(distillation.teacher_weights, before)  # BERT-EMD re-weighting after the step


# ----------------------------------------------------------------------------------- the cost
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_derived_student_costs_what_a_module_count_finds(seed):
    cell = random_cell(seed)
    config = student_config(width=12, max_len=16)
    model = AdaRecStudent(config, N_ITEMS, cell).eval()
    with ops.reference_ops():  # torch's FLOP counter sees aten convolutions
        measured = counted(model, torch.randint(1, N_ITEMS + 1, (1, 16)), method="predict")
    assert student_cost(cell, 12, 2, N_ITEMS, 16) == measured


# --------------------------------------------------------------------------------- the search
@pytest.fixture(scope="module")
def teacher_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("teachers")
    runs = {}
    for name, size in SMALL_TEACHERS.items():
        flags = [f"--{key.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                 for key, v in size.items()]
        out = root / name
        assert main(["train", "--data", "synthetic:tiny", "--out", str(out), "--model", name, "--max-len", "10",
                     "--epochs", "1", *flags, *QUIET]) == 0
        runs[name] = out
    return runs


def small_search(out: Path, teacher: str, **search):
    train = build_config(None, {"data": "synthetic:tiny", "out": str(out), "seed": "3", "max_len": "10",
                                "progress": "false", "checkpoint_every_steps": "1", "batch_size": "512",
                                "epochs": "3", "threads": "1"}, default_window="sliding")
    return train, AdaRecConfig(**{"teacher": teacher, "search_epochs": 2, **search})


def test_architecture_steps_read_held_out_users_and_weight_steps_the_others(tmp_path, tiny, teacher_runs,
                                                                           stepped_batches):
    train, options = small_search(tmp_path / "run", str(teacher_runs["sasrec"]), held_out_users=0.2)
    adarec.search(train, options, tiny)

    held_out_loader = tiny.train_loader(batch_size=512, max_len=10, window="sliding", seed=3, held_out_users=0.2,
                                        held_out=True)
    held_out = {u for batch in held_out_loader.epoch(0) for u in batch["users"].tolist()}
    stepped_batches.assert_architecture_steps_on(held_out, ["alpha"])


def result_of(out: Path) -> tuple:
    result = json.loads((out / "result.json").read_text())
    return result["architecture"], result["fitness"]


def test_search_killed_in_the_teacher_and_the_supernet_resumes_to_the_same_result(tmp_path, tiny, monkeypatch):
    monkeypatch.setitem(teachers.TEACHER_SIZES, "nextitnet", SMALL_TEACHERS["nextitnet"])
    straight = adarec.search(*small_search(tmp_path / "straight", "nextitnet"), tiny)
    assert straight.architecture["teacher"] == "nextitnet" and len(straight.architecture["cell"]) == EDGES
    for plot in ("architecture.png", "cell.png", "emd_flow.png"):
        assert (tmp_path / "straight" / "plots" / plot).stat().st_size > 0

    out = tmp_path / "killed"
    train, options = small_search(out, "nextitnet")
    validate = Trainer._validate

    def die_validating_the_teacher(self, split="valid"):
        raise Killed

    monkeypatch.setattr(Trainer, "_validate", die_validating_the_teacher)
    with pytest.raises(Killed):
        adarec.search(train, options, tiny)
    monkeypatch.setattr(Trainer, "_validate", validate)

    before_batch = adarec.SearchCallbacks.before_batch

    def die_in_second_epoch(self, epoch, index):
        if epoch == 1 and index == 1:
            raise Killed
        before_batch(self, epoch, index)

    monkeypatch.setattr(adarec.SearchCallbacks, "before_batch", die_in_second_epoch)
    with pytest.raises(Killed):
        adarec.search(train, options, tiny, resume=True)
    monkeypatch.setattr(adarec.SearchCallbacks, "before_batch", before_batch)
    adarec.search(train, options, tiny, resume=True)
    assert result_of(out) == result_of(tmp_path / "straight")

    retrained = [adarec.retrain(run, tiny) for run in (out, tmp_path / "straight")]
    assert retrained[0]["test"] == retrained[1]["test"] and retrained[0]["cell"] == straight.architecture["cell"]


def test_a_sasrec_teacher_is_trained_and_read_back(tmp_path, tiny, monkeypatch):
    monkeypatch.setitem(teachers.TEACHER_SIZES, "sasrec", SMALL_TEACHERS["sasrec"])
    train, options = small_search(tmp_path / "run", "sasrec", search_epochs=1)
    found = adarec.search(train, options, tiny)
    assert found.architecture["teacher"] == "sasrec" and found.architecture["width"] == 8
    assert (tmp_path / "run" / "teacher" / "result.json").is_file()


def test_fixed_cell_and_finetuning(tmp_path, tiny, teacher_runs):
    cell = ",".join(["conv3_d1"] * EDGES)
    fixed = adarec.search(*small_search(tmp_path / "fixed", str(teacher_runs["nextitnet"]), architecture=cell), tiny)
    assert fixed.architecture["cell"] == cell.split(",") and fixed.supernet_checkpoint == ""
    assert set(adarec.retrain(tmp_path / "fixed", tiny, fast_dev_run=True)["test"]) >= {"ndcg@10", "mrr@5"}

    tuned = tmp_path / "tuned"
    adarec.search(*small_search(tuned, str(teacher_runs["nextitnet"]), retrain="finetune",
                                architecture_source="valid"), tiny)
    assert "ndcg@10" in adarec.retrain(tuned, tiny, fast_dev_run=True)["test"]


# ------------------------------------------------------------------------------- the commands
def test_search_retrain_recommend_evaluate_and_export_commands_on_the_tiny_preset(commands_on_tiny):
    found, _ = commands_on_tiny("adarec")
    assert found["architecture"]["width"] == 64  # NextItNet's 256 / 4


def test_bad_teachers_and_loss_weights_are_refused(tmp_path, tiny, teacher_runs, capsys):
    with pytest.raises(ValueError, match="unknown teacher 'gru4rec'"):
        adarec.search(*small_search(tmp_path / "a", "gru4rec"), tiny)
    assert main(["search", "adarec", "--data", "synthetic:tiny", "--out", str(tmp_path / "b"),
                 "--teacher", "bert4rec", *QUIET]) == 2
    assert "unknown teacher 'bert4rec'" in capsys.readouterr().err

    from seqrec_fast.data import synthesize

    other_seed, other_size = synthesize("tiny", seed=1), synthesize("tiny", seed=0, n_items=120)
    with pytest.raises(ValueError, match="another or rebuilt dataset"):
        adarec.search(*small_search(tmp_path / "c", str(teacher_runs["nextitnet"])), other_seed)
    with pytest.raises(ValueError, match="another or rebuilt dataset|items"):
        adarec.search(*small_search(tmp_path / "d", str(teacher_runs["nextitnet"])), other_size)
    with pytest.raises(ValueError, match="is a gru4rec run"):
        gru = tmp_path / "gru"
        assert main(["train", "--data", "synthetic:tiny", "--out", str(gru), "--model", "gru4rec",
                     "--fast-dev-run", *QUIET]) == 0
        adarec.search(*small_search(tmp_path / "e", str(gru)), tiny)
    for key, value in (("gamma", "1.5"), ("gamma", "-0.1"), ("beta", "-1"), ("beta", "nan")):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            parse_options(AdaRecConfig, {key: value})
    with pytest.raises(ValueError, match="architecture: expected 6"):
        AdaRecConfig(architecture="skip,zero")
