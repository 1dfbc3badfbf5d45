"""Finds a CUDA toolkit (nvcc, headers, libcudart) that can compile the CUDA operators.

Three layouts are understood:

* a system toolkit: ``$CUDA_HOME``/``$CUDA_PATH``, or the ``nvcc`` on ``PATH``;
* PyPI's CUDA 13 wheels (``cuda-toolkit[nvcc]``): everything under ``site-packages/nvidia/cu13``;
* PyPI's CUDA 12 wheels (``nvidia-cuda-nvcc-cu12`` and friends): ``nvidia/cuda_nvcc`` holds nvcc,
  ``nvidia/cuda_runtime`` the headers and the runtime library.

The wheels ship ``libcudart.so.N`` but no plain ``libcudart.so``, so ``-lcudart`` cannot link
against them; :func:`cudart_link_dir` makes a private folder holding that link.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CudaToolkit:
    home: Path  # what torch's cpp_extension calls CUDA_HOME (holds bin/nvcc)
    nvcc: Path
    include_dirs: tuple[Path, ...] = field(default_factory=tuple)
    library_dirs: tuple[Path, ...] = field(default_factory=tuple)
    origin: str = "system"

    def describe(self) -> str:
        return f"{self.nvcc} ({self.origin})"


def _site_dirs() -> list[Path]:
    dirs = []
    for d in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        p = Path(d)
        if p.is_dir() and p not in dirs:
            dirs.append(p)
    return dirs


def _from_home(home: Path, origin: str) -> CudaToolkit | None:
    nvcc = home / "bin" / "nvcc"
    if not nvcc.is_file():
        return None
    libs = [d for d in (home / "lib64", home / "lib") if d.is_dir()]
    return CudaToolkit(home, nvcc, (home / "include",), tuple(libs), origin)


def _from_pip_wheels() -> CudaToolkit | None:
    for sp in _site_dirs():
        nvidia = sp / "nvidia"
        if not nvidia.is_dir():
            continue
        # CUDA 13+ wheels: one merged tree per major version (nvidia/cu13, ...).
        for tree in sorted(nvidia.glob("cu[0-9]*"), reverse=True):
            found = _from_home(tree, f"PyPI wheels, {tree.name}")
            if found:
                return found
        # CUDA 12 wheels: nvcc and the runtime live in separate packages.
        nvcc_home = nvidia / "cuda_nvcc"
        runtime = nvidia / "cuda_runtime"
        if (nvcc_home / "bin" / "nvcc").is_file():
            includes = [nvcc_home / "include", runtime / "include"]
            libs = [runtime / "lib"]
            return CudaToolkit(
                nvcc_home,
                nvcc_home / "bin" / "nvcc",
                tuple(d for d in includes if d.is_dir()),
                tuple(d for d in libs if d.is_dir()),
                "PyPI wheels, cuda_nvcc",
            )
    return None


def find_cuda_toolkit() -> CudaToolkit | None:
    """The toolkit to build with, or None when no nvcc can be found."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            found = _from_home(Path(os.environ[var]), f"${var}")
            if found:
                return found
    nvcc = shutil.which("nvcc")
    if nvcc:
        found = _from_home(Path(nvcc).resolve().parent.parent, "PATH")
        if found:
            return found
    found = _from_pip_wheels()
    if found:
        return found
    return _from_home(Path("/usr/local/cuda"), "/usr/local/cuda")


def cudart_link_dir(toolkit: CudaToolkit, scratch: Path) -> Path | None:
    """A folder with a plain ``libcudart.so`` for the linker, made in ``scratch`` if needed.

    Returns None when a library dir of the toolkit already has ``libcudart.so``.
    """
    versioned = []
    for lib_dir in toolkit.library_dirs:
        if (lib_dir / "libcudart.so").exists():
            return None
        versioned += sorted(lib_dir.glob("libcudart.so.[0-9]*"))
    if not versioned:
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    link = scratch / "libcudart.so"
    target = versioned[0]
    if link.is_symlink() and Path(os.readlink(link)) != target:
        link.unlink()
    if not link.exists():
        tmp = scratch / f".libcudart.so.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)  # atomic: a concurrent build never sees a half-made link
    return scratch


def matching_nvcc_requirement(torch_cuda: str | None) -> str | None:
    """The pip requirement that installs an nvcc matching torch's CUDA, or None if torch has none.

    CUDA 13 wheels come through the ``cuda-toolkit`` meta-package that torch itself depends on, so
    its ``nvcc`` extra at the same version matches exactly; CUDA 12 wheels have one package each.
    """
    from importlib.metadata import PackageNotFoundError, version

    if not torch_cuda:
        return None
    try:
        return f"cuda-toolkit[nvcc]=={version('cuda-toolkit')}"
    except PackageNotFoundError:
        pass
    major = torch_cuda.split(".")[0]
    return f"nvidia-cuda-nvcc-cu{major}=={torch_cuda}.*"
