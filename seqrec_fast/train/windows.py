"""Which training windows a run uses: `TrainConfig.window` resolved against the dataset.

"auto" (the default) cuts disjoint windows ("sliding": every target once per epoch, the
cheapest epoch) when that already gives an epoch of at least `min_epoch_steps` optimizer steps,
and otherwise overlapping ones: the largest stride that does ("stride" windows still train each
target once per epoch, now with a longer context). Small datasets are the reason: ml-100k cut
into disjoint windows of 50 is 9 batches of 256, so early stopping on a per-epoch validation
score sees a few hundred optimizer steps in all. There, with the same targets per epoch, ten
times the steps (stride 5, or batches of 32) raised SASRec's validation NDCG@10 from 0.063-0.065
to 0.067-0.069 (benchmarks/bench_windows.py measures it). On large datasets (ml-20m: over a
thousand disjoint-window batches per epoch) "auto" is "sliding"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Windows:
    window: str  # the loader's: "sliding", "stride" or "last"
    stride: int | None  # set for "stride" only
    label: str  # for logs and results, e.g. "stride 6 (auto: 9 sliding steps < 64)"


def resolve_windows(config, dataset, mode: str) -> Windows:
    """The loader's window options for `config` on `dataset` (objective `mode`).

    "auto" counts the batches of the whole training split at the global batch size, so every
    rank of a distributed run (and every resume) resolves to the same windows."""
    max_len = config.model.max_len
    if config.window != "auto":
        stride = config.loader_stride()
        return Windows(config.window, stride, config.window if stride is None else f"stride {stride}")

    def steps(stride: int) -> int:
        return len(dataset.train_loader(batch_size=config.batch_size, max_len=max_len, mode=mode, window="stride",
                                        stride=stride, shuffle=False))

    wanted = config.min_epoch_steps
    sliding = steps(max_len)
    if sliding >= wanted:
        return Windows("sliding", None, f"sliding (auto: {sliding} steps per epoch >= {wanted})")
    # Steps fall as the stride grows: find the largest stride that still gives `wanted`.
    low, high = 1, max_len - 1  # steps(low) >= wanted is assumed until checked below
    while low < high:
        middle = (low + high + 1) // 2
        if steps(middle) >= wanted:
            low = middle
        else:
            high = middle - 1
    reason = f"{sliding} sliding steps per epoch < {wanted}"
    if low == 1 and steps(1) < wanted:
        reason += f"; stride 1, the most there are, gives {steps(1)}"
    return Windows("stride", low, f"stride {low} (auto: {reason})")
