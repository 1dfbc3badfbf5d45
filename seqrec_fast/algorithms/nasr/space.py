"""NASR's table-like search space, torch-free: one of four ops for each of the layers, the layers
cut into blocks that are searched one after another.

    trm4, trm8    a Transformer layer (causal self-attention with 4 or 8 heads, FFN 4d with
                  GELU, post-LN with linear residuals)
    tcn12, tcn14  a TCN op: two residual blocks of two causal convolutions (kernel 3), the
                  blocks at dilations 1 and 2 (convolutions 1, 2, 2, 4) or 1 and 4 (1, 2, 4, 8)

At one width each op has about the same parameters (about 50k at d 64), so a path's size does
not depend on its ops."""

from __future__ import annotations

import itertools

OPS: tuple[str, ...] = ("trm4", "trm8", "tcn12", "tcn14")
# The model fields the hybrid reads beyond width and length, at the authors' values.
MODEL_DEFAULTS = {"dropout": 0.1, "attn_dropout": 0.1}
HEADS = {"trm4": 4, "trm8": 8}
DILATIONS = {"tcn12": (1, 2), "tcn14": (1, 4)}


def check_op(name: str) -> str:
    if name not in OPS:
        raise ValueError(f"unknown NASR op {name!r}; the ops are {', '.join(OPS)}")
    return name


def block_sizes(layers: int, blocks: int) -> int:
    """Layers per block; the layers must divide into the blocks."""
    if layers < 1 or blocks < 1 or layers % blocks:
        raise ValueError(f"{layers} layers do not divide into {blocks} blocks: layers must be a positive multiple of "
                         "blocks")
    return layers // blocks


def block_paths(layers_per_block: int) -> list[tuple[int, ...]]:
    """Every path of one block, as op indices per layer, in a fixed order (the score table's)."""
    return list(itertools.product(range(len(OPS)), repeat=layers_per_block))


def parse_layers(text: str, layers: int) -> tuple[str, ...]:
    """An architecture as one op per layer ("trm4,tcn12,...") or "OP*N" runs ("tcn12*16",
    "trm4*8,tcn14*8")."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        op, _, count = part.partition("*")
        op = check_op(op.strip())
        if count and not count.strip().isdigit():
            raise ValueError(f"architecture: {part!r} is not OP or OP*N")
        names += [op] * (int(count) if count else 1)
    if len(names) != layers:
        raise ValueError(f"architecture: {len(names)} layers given, the search has {layers}")
    return tuple(names)


def describe_layers(names: tuple[str, ...] | list[str]) -> str:
    """Runs of equal ops, e.g. "trm4*3, tcn12, trm8*12"."""
    runs = [(op, len(list(group))) for op, group in itertools.groupby(names)]
    return ", ".join(op if count == 1 else f"{op}*{count}" for op, count in runs)
