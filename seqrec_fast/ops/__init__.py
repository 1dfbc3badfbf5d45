"""Native operators (csrc/, JIT-built on first use) and their pure-PyTorch references."""

from .build import OpsStatus, load

__all__ = ["OpsStatus", "load"]
