"""Native operators (csrc/, JIT-built on first use) and their pure-PyTorch references."""

from .build import OpsStatus, load
from .functional import (
    as_coords,
    causal_conv1d,
    dropout,
    grid_corners,
    grid_linear,
    linear_attention,
    mix,
    native_available,
    reference_ops,
    sliced_linear,
)
from .modules import (
    CausalConv1d,
    Dropout,
    GridLayerNorm,
    GridLinear,
    GridTransformerLayer,
    LinearMultiheadAttention,
    SlicedLinear,
)

__all__ = [
    "CausalConv1d",
    "Dropout",
    "GridLayerNorm",
    "GridLinear",
    "GridTransformerLayer",
    "LinearMultiheadAttention",
    "OpsStatus",
    "SlicedLinear",
    "as_coords",
    "causal_conv1d",
    "dropout",
    "grid_corners",
    "grid_linear",
    "linear_attention",
    "load",
    "mix",
    "native_available",
    "reference_ops",
    "sliced_linear",
]
