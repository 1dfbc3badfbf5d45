"""CANet (one person, one model): a router gives each user one route (embedding width x hidden
width x depth) through one weight-sliced SASRec; router and backbone train jointly, and a user's
route runs sliced at its own widths to its own depth, so a small route takes less time.

    options.py    the search's options
    space.py      routes as text and indices, their cost (torch-free)
    backbone.py   the compound SASRec: masked full-width and sliced execution of any route
    router.py     the one-block SASRec that scores the routes
    network.py    the model: routing (hard Gumbel-softmax in training, argmax otherwise)
    losses.py     the uniform and guide losses
    routing.py    the routes of a split's users, one route for every user
    search.py     the joint training, the routes' scores, derive
    plots.py      route histograms, route entropy over training, static routes

Importing this package stays torch-free: the command line reads :data:`ALGORITHM` for --help."""

from __future__ import annotations

from ..base import Algorithm
from .options import MODEL_DEFAULTS, CANetConfig


class CANet(Algorithm):
    name = "canet"
    summary = ("CANet: a router gives each user one of 36 weight-sliced SASRec routes (embedding x hidden x depth), "
               "trained jointly; a small route runs sliced, in less time")
    implementation = "seqrec_fast.algorithms.canet.search"
    options = CANetConfig
    backbones = ("sasrec",)  # the compound SASRec takes its length, heads and dropout
    model_defaults = MODEL_DEFAULTS
    default_window = "stride"  # the router reads a window up to its first target
    model_dir = "supernet"  # the search trains and tests the model itself

    def build_model(self, spec, n_items: int):
        return self._implementation().build_canet(spec, n_items)

    def fast_dev_run(self, options: CANetConfig) -> CANetConfig:
        return options  # the trainer's fast dev run trains two batches; every route is still scored

    def headline(self, result, train) -> str:
        found, metric = result.architecture, result.metric
        routing, times = found["test_routing"], found["scoring_ms"]
        saved = 1 - routing["multiply_adds"] / found["full_multiply_adds"]
        what = f"the fixed route {found['route']}" if found["route"] else f"{len(found['routes'])} routes"
        return (f"canet on {train.data} with {what}: test {metric} {result.test[metric]:.4f} (validation "
                f"{result.fitness:.4f}, epoch {found['best_epoch']} of {found['epochs_run']}); "
                f"{routing['multiply_adds']:,.0f} multiply-adds per test user, {saved:.0%} below the largest route; "
                f"ranking the timed users took {times['routed']:.1f} ms routed, {times['largest']:.1f} ms on the "
                f"largest route, {times['smallest']:.1f} ms on the smallest")

    def describe(self, result) -> str:
        found = result.architecture
        counts = found["test_routing"]["route_counts"]
        users = max(sum(counts), 1)
        lines = [f"{'route':>11}  {'test users':>10}  {'multiply-adds':>14}  valid {result.metric} with every user "
                 "on the route"]
        for row, count in zip(found["routes"], counts):
            lines.append(f"{row['route']:>11}  {count / users:>10.1%}  {row['multiply_adds']:>14,}  "
                         f"{row['valid'][result.metric]:.4f}")
        return "\n".join(lines)


ALGORITHM = CANet()
