"""Where the C++/CUDA operator sources live, and which of them each build variant compiles.

This module imports nothing from torch or the rest of the package, so that `setup.py` (the
ahead-of-time build) can load it by path and compile exactly the list the JIT build uses.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Header and source suffixes whose content keys the build cache.
_SOURCE_SUFFIXES = (".cpp", ".cu", ".h", ".cuh", ".hpp")


def csrc_dir() -> Path:
    """The csrc/ folder: inside the installed package, or the repository's top-level one."""
    for candidate in (_PACKAGE_DIR / "csrc", _PACKAGE_DIR.parent / "csrc"):
        if (candidate / "library.cpp").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"seqrec_fast: the operator sources (csrc/library.cpp) are missing under {_PACKAGE_DIR}; "
        "reinstall the package"
    )


def cpu_sources(root: Path | None = None) -> list[Path]:
    """Sources of the CPU variant: the library declaration, op schemas and CPU kernels."""
    root = root or csrc_dir()
    return sorted(root.glob("*.cpp")) + sorted((root / "cpu").glob("*.cpp"))


def cuda_sources(root: Path | None = None) -> list[Path]:
    """Extra sources of the CUDA variant: CUDA kernels (.cu) and their bindings (.cpp)."""
    root = root or csrc_dir()
    return sorted((root / "cuda").glob("*.cpp")) + sorted((root / "cuda").glob("*.cu"))


def all_source_files(root: Path | None = None) -> list[Path]:
    """Every file whose content can change the built library (sources and headers)."""
    root = root or csrc_dir()
    return sorted(p for p in root.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file())
