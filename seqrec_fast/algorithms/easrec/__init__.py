"""EASRec (elastic architecture search, later DNS-Rec): the width and depth of a linear-attention
SASRec with data-aware gates, searched by Gumbel-softmax under a FLOPs penalty; the derived model
runs at its own width and depth.

    options.py   the search's options
    space.py     candidate widths and depths, architectures as text, their cost (torch-free)
    network.py   the elastic model: the supernet, and a derived model of one width
    search.py    the search, derive and retraining
    plots.py     width and depth probabilities, accuracy against multiply-adds and time

Importing this package stays torch-free: the command line reads :data:`ALGORITHM` for --help."""

from __future__ import annotations

import dataclasses

from ..base import Algorithm
from .options import EASRecConfig


class EASRec(Algorithm):
    name = "easrec"
    summary = ("EASRec: the width and depth of a linear-attention SASRec, searched by Gumbel-softmax under a FLOPs "
               "penalty, run narrower for real")
    implementation = "seqrec_fast.algorithms.easrec.search"
    options = EASRecConfig
    backbones = ("sasrec",)  # its linear-attention variant, with SASRec's widths, length and dropout
    # Disjoint windows rather than SASRec's strided ones: at EASRec's long max_len a strided window
    # runs a full-length forward for a few targets, and validation does not reward the extra
    # context (docs/experiments.md).
    default_window = "sliding"

    def build_model(self, spec, n_items: int):
        return self._implementation().build_derived(spec, n_items)

    def fast_dev_run(self, options: EASRecConfig) -> EASRecConfig:
        # A fast dev run trains two batches: an architecture step after each keeps that phase in.
        return dataclasses.replace(options, search_epochs=1, architecture_every=1)

    def headline(self, result, train) -> str:
        found = result.architecture
        if not result.evaluations:
            return f"easrec on {train.data}: the fixed architecture {found['architecture']}, no search"
        return (f"easrec on {train.data}: {found['architecture']} chosen, validation {result.metric} "
                f"{result.fitness:.4f} with the supernet's weights ({result.evaluations} candidates scored, search "
                f"{result.search_s:.0f} s)")

    def describe(self, result) -> str:
        found = result.architecture
        gates = {"two": "two-layer gates", "one": "one-layer gates", "none": "no gates"}[found["gates"]]
        lines = [f"{found['architecture']}: width {found['width']}, inner size {found['inner']}, depth {found['depth']}, "
                 f"{gates}; {found['multiply_adds']:,} multiply-adds per sequence, {found['params']:,} parameters, "
                 f"{found['scoring_ms']:.1f} ms to rank all items for the timed users"]
        for row in found.get("candidates", []):
            lines.append(f"  {row['architecture']:>8}  valid {result.metric} {row['valid'][result.metric]:.4f}  "
                         f"{row['multiply_adds']:>14,} multiply-adds  {row['scoring_ms']:8.1f} ms")
        return "\n".join(lines)


ALGORITHM = EASRec()
