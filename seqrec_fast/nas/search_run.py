"""A search's run directory, shared by every algorithm.

    RUN_DIR/config.yaml        the resolved configuration (algorithm, search options, training)
    RUN_DIR/supernet/          the supernet's training run (trainer run directory, resumable); for
                               CANet, the model itself, trained and tested
    RUN_DIR/search_state.json  the search's whole state, rewritten after every evaluation
    RUN_DIR/candidates.jsonl   every candidate evaluated so far, in order, with its fitness
    RUN_DIR/best.json          the best candidate so far: readable while the search runs
    RUN_DIR/result.json        the SearchResult, once the search has finished
    RUN_DIR/spec.json          the chosen model as a ModelSpec (seqrec_fast.models.spec)
    RUN_DIR/plots/             search curve and the chosen architecture
    RUN_DIR/retrain/           the chosen architecture retrained from scratch

Every file is written atomically, so a kill at any moment leaves either the old or the new
version, and the search resumes from the state file to the same result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..atomic_io import atomic_write_bytes, atomic_write_json, atomic_write_text

CONFIG = "config.yaml"
STATE = "search_state.json"
CANDIDATES = "candidates.jsonl"
BEST = "best.json"
RESULT = "result.json"
SPEC = "spec.json"
SUPERNET = "supernet"
RETRAIN = "retrain"
PLOTS = "plots"


@dataclass
class SearchResult:
    """What a search found: the architecture (or loss weights) as JSON-able data, its score."""

    algorithm: str
    architecture: dict[str, Any]
    fitness: float
    metric: str
    candidate: list[float] = field(default_factory=list)
    evaluations: int = 0
    supernet_checkpoint: str = ""  # relative to the run directory
    warmup_s: float = 0.0
    search_s: float = 0.0
    run_dir: str = ""
    test: dict[str, float] = field(default_factory=dict)  # when the search tests its model itself (CANet)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SearchRun:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    # -- configuration ------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(CONFIG), yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        path = self.path(CONFIG)
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} is not a search run directory: it has no {CONFIG}")
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict) or "algorithm" not in loaded:
            raise ValueError(f"{path}: expected a search configuration with an 'algorithm' key")
        return loaded

    # -- search state -------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        path = self.path(STATE)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: corrupted search state ({error})") from None

    def save_state(self, state: dict[str, Any], history: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
        """The state first: candidates.jsonl and best.json are views of it, rebuilt on resume."""
        atomic_write_json(self.path(STATE), state)
        atomic_write_text(self.path(CANDIDATES), "".join(json.dumps(h) + "\n" for h in history))
        if best is not None:
            atomic_write_json(self.path(BEST), best)

    def write_result(self, result: SearchResult) -> None:
        stored = result.to_dict()
        del stored["run_dir"]  # a run directory never names where it lives: copies stay true
        atomic_write_json(self.path(RESULT), stored)

    def read_result(self) -> SearchResult:
        path = self.path(RESULT)
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} has no finished search ({RESULT} is missing): run or resume the search first")
        return SearchResult(**{**json.loads(path.read_text()), "run_dir": str(self.root)})

    # -- plots --------------------------------------------------------------------------------
    def plot_search_curve(self, history: list[dict[str, Any]], metric: str) -> Path:
        """Best-so-far and mean fitness per round."""
        plt = pyplot()
        rounds = sorted({h["round"] for h in history})
        mean = [sum(h["fitness"] for h in history if h["round"] == r) / sum(1 for h in history if h["round"] == r)
                for r in rounds]
        best, running = [], float("-inf")
        for r in rounds:
            running = max(running, max(h["fitness"] for h in history if h["round"] == r))
            best.append(running)
        figure, axis = plt.subplots(figsize=(5, 3.5))
        axis.plot(rounds, best, marker=".", label="best so far")
        axis.plot(rounds, mean, marker=".", label="round mean")
        axis.set(xlabel="round (0 = initial population)", ylabel=f"validation {metric}", title="search")
        axis.legend()
        return self.save_figure(figure, plt, "search_curve.png")

    def plot_layer_weights(self, weights: dict[str, list[float]], title: str) -> Path:
        """Grouped bars: one group per layer, one bar per weight kind."""
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(5, 3.5))
        kinds = list(weights)
        layers = range(1, len(weights[kinds[0]]) + 1)
        width = 0.8 / len(kinds)
        for k, kind in enumerate(kinds):
            axis.bar([layer + (k - (len(kinds) - 1) / 2) * width for layer in layers], weights[kind], width, label=kind)
        axis.set(xlabel="layer", ylabel="weight", title=title, xticks=list(layers))
        axis.legend()
        return self.save_figure(figure, plt, "weights.png")

    def save_figure(self, figure, plt, name: str) -> Path:
        out = self.path(PLOTS) / name
        figure.tight_layout()
        atomic_write_bytes(out, lambda handle: figure.savefig(handle, format="png", dpi=110))
        plt.close(figure)
        return out


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
