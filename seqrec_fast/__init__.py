"""seqrec_fast: fast training and architecture search for sequential recommenders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqrec-fast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"



def load(run_dir, *, data=None, device="auto"):
    """The finished model of a training run or a retrained search, ready to recommend:
    ``seqrec_fast.load("runs/sasrec").recommend([[50, 172, 133]], k=10)``. ``data``: where the
    run's dataset now is, if it moved; ``device``: "auto", "cpu" or "cuda"."""
    from .serving.recommender import load as load_run

    return load_run(run_dir, data=data, device=device)


__all__ = ["__version__", "load"]
