"""window="auto": disjoint windows when they give enough steps per epoch, else the largest stride
that does; explicit windows pass through unchanged."""

from __future__ import annotations

import pytest

from seqrec_fast.data import synthesize
from seqrec_fast.train.config import ConfigError, build_config
from seqrec_fast.train.windows import resolve_windows

OPTIONS = {"model": "sasrec", "data": "synthetic:tiny", "max_len": 20, "batch_size": 64}


@pytest.fixture(scope="module")
def tiny():
    return synthesize("tiny", seed=0)


def epoch_steps(dataset, config, stride: int, mode: str = "causal") -> int:
    return len(dataset.train_loader(batch_size=config.batch_size, max_len=config.model.max_len, mode=mode,
                                    window="stride", stride=stride))


@pytest.mark.parametrize("mode", ["causal", "cloze"])
def test_auto_takes_the_largest_stride_with_enough_steps(tiny, mode):
    config = build_config(overrides={**OPTIONS, "min_epoch_steps": 40})
    assert epoch_steps(tiny, config, 20, mode) < 40  # disjoint windows are too few here
    windows = resolve_windows(config, tiny, mode)
    assert windows.window == "stride"
    assert epoch_steps(tiny, config, windows.stride, mode) >= 40 > epoch_steps(tiny, config, windows.stride + 1, mode)
    assert windows.label.startswith(f"stride {windows.stride} (auto: ")


def test_auto_is_sliding_when_an_epoch_has_enough_steps(tiny):
    config = build_config(overrides={**OPTIONS, "min_epoch_steps": 2})
    windows = resolve_windows(config, tiny, "causal")
    assert (windows.window, windows.stride) == ("sliding", None)


def test_auto_stops_at_stride_one_and_says_so(tiny):
    config = build_config(overrides={**OPTIONS, "min_epoch_steps": 10**6})
    windows = resolve_windows(config, tiny, "causal")
    assert (windows.window, windows.stride) == ("stride", 1)
    assert "stride 1, the most there are, gives" in windows.label


@pytest.mark.parametrize("window, stride, expected", [("sliding", 10, ("sliding", None)), ("last", 10, ("last", None)),
                                                      ("stride", 5, ("stride", 5)), ("stride", 99, ("stride", 20))])
def test_explicit_windows_pass_through(tiny, window, stride, expected):
    config = build_config(overrides={**OPTIONS, "window": window, "stride": stride})
    windows = resolve_windows(config, tiny, "causal")
    assert (windows.window, windows.stride) == expected


def test_negative_min_epoch_steps_names_the_key():
    with pytest.raises(ConfigError, match="config key 'min_epoch_steps': expected a non-negative integer"):
        build_config(overrides={**OPTIONS, "min_epoch_steps": -1})
