"""The plug-in shape: an algorithm defined and registered here, through the public registry
only, gets `seqrec-fast search toy` (with its options) and `seqrec-fast retrain`; and ADT's fast
dev run goes through every phase."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

from seqrec_fast.algorithms import registry
from seqrec_fast.algorithms.base import Algorithm
from seqrec_fast.cli import main
from seqrec_fast.models import ModelSpec
from seqrec_fast.nas.search_loop import default_log, open_search, retrain_search
from seqrec_fast.nas.search_run import SPEC, SearchResult, SearchRun
from seqrec_fast.options import POSITIVE, option, to_dict
from seqrec_fast.train.callbacks import TrainerCallbacks


@dataclass(frozen=True)
class ToyOptions:
    widths: tuple[int, ...] = option((8, 16), help="hidden sizes to choose from")
    tries: int = option(1, check=POSITIVE, help="seeds scored per width")


class SpecCallbacks(TrainerCallbacks):
    def __init__(self, spec):
        self.spec = spec

    def build_model(self, config, n_items):
        from seqrec_fast.models import build_model

        return build_model(self.spec, n_items)


class Toy(Algorithm):
    """Chooses a hidden size by scoring untrained backbones on validation: nothing to learn from,
    everything a real algorithm passes through."""

    name = "toy"
    summary = "a test algorithm that picks a hidden size"
    options = ToyOptions
    backbones = ("sasrec",)

    def search(self, train, options, dataset, *, resume=False, overwrite=False, log=None):
        import torch

        from seqrec_fast.models import build_model
        from seqrec_fast.train.evaluation import evaluate_split

        with open_search(self.name, train, to_dict(options), dataset, resume=resume, overwrite=overwrite,
                         log=log or default_log) as run:
            scores = {}
            for width in options.widths:
                model_config = dataclasses.replace(train.model, hidden_size=width)
                torch.manual_seed(train.seed)
                model = build_model(model_config, dataset.n_items).eval()
                scores[width] = evaluate_split(model, dataset, train, "valid", torch.device("cpu"))[train.metric]
            best = max(scores, key=scores.get)
            result = SearchResult(algorithm=self.name, architecture={"hidden_size": best}, fitness=scores[best],
                                  metric=train.metric, evaluations=len(scores), run_dir=str(run.root))
            run.write_result(result)
            self.derive(result, train).save(run.path(SPEC))
        return result

    def derive(self, result, train):
        return ModelSpec(dataclasses.replace(train.model, hidden_size=result.architecture["hidden_size"]),
                         algorithm=self.name, searched=result.architecture)

    def retrain(self, run_dir, dataset, *, log=None, started_at=None, overwrite=False, fast_dev_run=False):
        spec = ModelSpec.load(SearchRun(run_dir).path(SPEC))

        def callbacks(train):
            train.model = spec.model  # the run's stored config and checkpoints describe the retrained model
            return SpecCallbacks(spec)

        result = retrain_search(run_dir, dataset, self.name, callbacks, log=log or default_log,
                                started_at=started_at, overwrite=overwrite, fast_dev_run=fast_dev_run)
        return {**result, "hidden_size": spec.model.hidden_size}

    def fast_dev_run(self, options):
        return dataclasses.replace(options, widths=options.widths[:1])


@pytest.fixture
def toy():
    algorithm = registry.register(Toy())
    yield algorithm
    registry.unregister(algorithm.name)


MODEL = ["--hidden-size", "16", "--num-heads", "2", "--inner-size", "32", "--max-len", "10", "--no-progress",
         "--threads", "1"]


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_registered_algorithm_searches_and_retrains_through_the_cli(toy, tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["search", "toy", "--data", "synthetic:tiny", "--out", str(out), "--widths", "8,24", "--epochs", "2",
                 *MODEL, "--json"]) == 0
    searched = last_json(capsys)
    assert searched["algorithm"] == "toy" and searched["architecture"]["hidden_size"] in (8, 24)
    assert main(["retrain", str(out), "--json"]) == 0
    retrained = last_json(capsys)
    assert retrained["hidden_size"] == searched["architecture"]["hidden_size"]
    assert {"ndcg@10", "hr@10"} <= set(retrained["test"]) and retrained["epochs_run"] == 2
    assert main(["search", "toy", "--data", "synthetic:tiny", "--out", str(tmp_path / "bad"), "--tries", "0"]) == 2
    assert "config key 'tries': expected a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Toy())


def test_retrain_of_an_unregistered_algorithm_names_the_registered_ones(toy, tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["search", "toy", "--data", "synthetic:tiny", "--out", str(out), *MODEL, "--fast-dev-run"]) == 0
    registry.unregister("toy")
    assert main(["retrain", str(out)]) == 2
    assert "unknown search algorithm 'toy'; registered: adt" in capsys.readouterr().err
    registry.register(toy)


def test_adt_fast_dev_run_searches_and_retrains_with_test_metrics(tmp_path, capsys):
    out = tmp_path / "adt"
    assert main(["search", "adt", "--data", "synthetic:tiny", "--out", str(out), *MODEL, "--fast-dev-run",
                 "--json"]) == 0
    searched = last_json(capsys)
    assert searched["evaluations"] == 6  # the initial population of 3 and one round
    assert (out / "spec.json").is_file() and (out / "result.json").is_file()
    assert main(["retrain", str(out), "--fast-dev-run", "--json"]) == 0
    retrained = last_json(capsys)
    assert retrained["epochs_run"] == 1 and {"ndcg@10", "hr@10"} <= set(retrained["test"])
    metrics = [json.loads(line) for line in (out / "retrain" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 2  # two training batches


def test_train_fast_dev_run_trains_two_batches_and_tests(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic:tiny", "--out", str(out), *MODEL, "--fast-dev-run", "--json"]) == 0
    result = last_json(capsys)
    assert result["epochs_run"] == 1 and "ndcg@10" in result["test"]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
