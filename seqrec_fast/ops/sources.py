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


def _unique_stems(files: list[Path]) -> list[Path]:
    """Both builds name object files after the source's stem, so stems must not repeat
    (csrc/cpu/foo.cpp and csrc/cuda/foo.cu would overwrite each other's foo.o)."""
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(
                f"seqrec_fast: {path} and {seen[path.stem]} share the file name stem "
                f"'{path.stem}'; object files are named by stem, so rename one "
                "(convention: <op>.cpp schema, cpu/<op>_cpu.cpp, cuda/<op>_cuda.cpp, cuda/<op>_kernel.cu)"
            )
        seen[path.stem] = path
    return files


def cpu_sources(root: Path | None = None) -> list[Path]:
    """Sources of the CPU variant: the library declaration, op schemas and CPU kernels."""
    root = root or csrc_dir()
    return _unique_stems(sorted(root.glob("*.cpp")) + sorted((root / "cpu").glob("*.cpp")))


def cuda_sources(root: Path | None = None) -> list[Path]:
    """Extra sources of the CUDA variant: CUDA kernels (.cu) and their bindings (.cpp)."""
    root = root or csrc_dir()
    files = sorted((root / "cuda").glob("*.cpp")) + sorted((root / "cuda").glob("*.cu"))
    _unique_stems(cpu_sources(root) + files)
    return files


def all_source_files(root: Path | None = None) -> list[Path]:
    """Every file whose content can change the built library (sources and headers)."""
    root = root or csrc_dir()
    return sorted(p for p in root.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file())
