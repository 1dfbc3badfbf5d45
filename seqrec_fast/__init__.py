"""seqrec_fast: fast training and architecture search for sequential recommenders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqrec-fast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
