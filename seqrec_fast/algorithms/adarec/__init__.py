"""AdaRec (WANT@NeurIPS'23): a small student cell searched by Gumbel-softmax DARTS while it is
distilled from a large teacher (NextItNet or SASRec), with an EMD mapping of teacher layers onto
student cells and a size/FLOPs cost.

    options.py       the search's options
    space.py         the ten ops and the cell's DAG (torch-free)
    cell_ops.py      the ops as causal modules, and their cost
    student.py       the supernet / derived student
    teacher.py       the teacher: its size, training, and what it is read for
    distillation.py  L_emb, L_hidden (EMD) and L_pred as the trainer's auxiliary loss
    search.py        the search, derive and retraining
    plots.py         architecture probabilities, the derived cell, the EMD flow

Importing this package stays torch-free: the command line reads :data:`ALGORITHM` for --help."""

from __future__ import annotations

import dataclasses

from ..base import Algorithm
from .options import TEACHERS, AdaRecConfig
from .space import describe_cell


class AdaRec(Algorithm):
    name = "adarec"
    summary = "AdaRec (WANT@NeurIPS'23): a student cell searched by Gumbel-softmax DARTS while distilled from a teacher"
    implementation = "seqrec_fast.algorithms.adarec.search"
    options = AdaRecConfig
    backbones = TEACHERS  # the teacher is chosen with --teacher; the student is AdaRec's own
    default_window = "sliding"

    def build_model(self, spec, n_items: int):
        return self._implementation().build_student(spec, n_items)

    def fast_dev_run(self, options: AdaRecConfig) -> AdaRecConfig:
        return dataclasses.replace(options, search_epochs=1)

    def describe(self, result) -> str:
        found = result.architecture
        lines = [f"student: {found['cells']} cells of width {found['width']}, distilled from {found['teacher']}"
                 f" (teacher trained in {result.warmup_s:.0f} s)"]
        return "\n".join(lines + describe_cell(found["cell"]))


ALGORITHM = AdaRec()
