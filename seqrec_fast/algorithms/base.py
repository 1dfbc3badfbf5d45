"""The shape every search algorithm takes, so that the command line, the run directory and
retraining work the same for all of them.

An algorithm is a package under ``seqrec_fast.algorithms`` whose ``__init__`` defines one
:class:`Algorithm` (torch-free at import, so that ``--help`` stays fast) and is named in
:mod:`.registry`. ``seqrec-fast search NAME`` builds its options from :attr:`Algorithm.options`
and ``seqrec-fast retrain RUN_DIR`` calls :meth:`Algorithm.retrain` of the algorithm recorded in
RUN_DIR/config.yaml."""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar


class Algorithm(abc.ABC):
    name: ClassVar[str]  # the search subcommand and the run directory's ``algorithm``
    summary: ClassVar[str]  # one line for ``seqrec-fast search --help``
    options: ClassVar[type]  # a frozen dataclass of the search's options (seqrec_fast.options fields)
    # The module (torch and all) whose search(), derive() and retrain() functions these methods
    # call, imported on first use so that the command line's --help stays torch-free.
    implementation: ClassVar[str]
    # The backbones it can search with, for --backbone's help.
    backbones: ClassVar[tuple[str, ...]] = ("bert4rec", "gru4rec", "nextitnet", "sasrec", "stosa")
    # Training windows when the configuration names none ("" -> the backbone's default).
    default_window: ClassVar[str] = ""
    # Model fields the algorithm fills when the configuration leaves them unset, before the
    # backbone's own defaults fill the rest (NASR's hybrid takes its authors' dropout, not the
    # configured backbone's).
    model_defaults: ClassVar[dict[str, Any]] = {}
    # Where a finished search's model is trained, under its run directory: "retrain", by
    # `seqrec-fast retrain`; or "supernet" for an algorithm whose search trains and tests the
    # model itself (CANet), which then has nothing to retrain.
    model_dir: ClassVar[str] = "retrain"

    def _implementation(self):
        return importlib.import_module(self.implementation)

    def search(self, train, options, dataset, *, resume: bool = False, overwrite: bool = False, log=None):
        """Runs (or resumes) the search into ``train.out`` and returns its
        :class:`~seqrec_fast.nas.search_run.SearchResult`."""
        return self._implementation().search(train, options, dataset, resume=resume, overwrite=overwrite, log=log)

    def derive(self, result, train):
        """The :class:`~seqrec_fast.models.spec.ModelSpec` that a finished search chose."""
        return self._implementation().derive(result, train)

    def retrain(self, run_dir, dataset, *, log=None, started_at: float | None = None, overwrite: bool = False,
                fast_dev_run: bool = False) -> dict[str, Any]:
        """Trains the derived model from scratch in RUN_DIR/retrain and tests it once
        (``fast_dev_run``: a few batches of each phase)."""
        return self._implementation().retrain(run_dir, dataset, log=log, started_at=started_at, overwrite=overwrite,
                                              fast_dev_run=fast_dev_run)

    def build_model(self, spec, n_items: int):
        """The model of a :class:`~seqrec_fast.models.spec.ModelSpec` this algorithm derived, when
        it is not the backbone of ``spec.model`` (a searched cell); None builds that backbone."""
        return None

    @abc.abstractmethod
    def fast_dev_run(self, options):
        """``options`` cut to the smallest search that still runs every phase once."""

    def headline(self, result, train) -> str:
        """The line the command line prints first after a search: what it scored, in how long."""
        return (f"{self.name} on {train.data} with {train.model.name}: best validation {result.metric} "
                f"{result.fitness:.4f} after {result.evaluations} candidates (warm-up {result.warmup_s:.0f} s, "
                f"search {result.search_s:.0f} s)")

    def describe(self, result) -> str:
        """What the CLI prints under a search's headline: the chosen architecture, readable."""
        return "\n".join(f"{key}: {value}" for key, value in result.architecture.items())
