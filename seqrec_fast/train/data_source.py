"""What ``--data`` may name: a prepared dataset directory (holding ``dataset.bin``), a raw
interactions file or directory (prepared on the fly by the data API), or ``synthetic:PRESET``
(optionally ``synthetic:PRESET:SEED``) for the embedded generator."""

from __future__ import annotations

from pathlib import Path

SYNTHETIC_PREFIX = "synthetic:"
CACHE_FILE = "dataset.bin"
INTERACTION_PATTERNS = ("*.inter", "ratings.dat", "ratings.csv", "u.data", "*.parquet", "*.tsv")


def open_dataset(spec: str):
    from ..data import load_dataset, prepare_dataset, synthesize

    if not spec:
        raise ValueError("no dataset given: pass --data DIR (prepared or raw) or --data synthetic:PRESET")
    if spec.startswith(SYNTHETIC_PREFIX):
        preset, _, seed = spec[len(SYNTHETIC_PREFIX):].partition(":")
        try:
            return synthesize(preset, seed=int(seed) if seed else 0)
        except ValueError as error:
            raise ValueError(f"--data {spec}: {error}") from None
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {spec}: no such file or directory")
    if path.name == CACHE_FILE or (path / CACHE_FILE).is_file():
        return load_dataset(path)
    return prepare_dataset(interactions_file(path))


def interactions_file(path: Path) -> Path:
    """The raw interactions file a path names: the path itself, or the one interactions file in a
    directory (RecBole's NAME.inter, MovieLens' ratings / u.data, or a single CSV/TSV/Parquet)."""
    if path.is_file():
        return path
    candidates = sorted(p for pattern in INTERACTION_PATTERNS for p in path.glob(pattern))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ValueError(f"--data {path}: expected one interactions file ({', '.join(INTERACTION_PATTERNS)}) "
                         f"or a prepared dataset ({CACHE_FILE}); found {found}")
    return candidates[0]
