"""Optional ahead-of-time build of the C++/CUDA operators.

`pip install .` (maturin) does not use this file: the package JIT-builds its operators on first
use. Users who want them prebuilt, for example on a cluster whose compute nodes have no compiler,
run, in the repository root of an editable install (`pip install -e .`):

    python setup.py build_ext --inplace            # CPU kernels, plus CUDA if torch and nvcc have it
    SEQREC_FAST_BUILD_CUDA=0 python setup.py build_ext --inplace   # CPU kernels only

This writes seqrec_fast/_C*.so, which `seqrec_fast.ops` loads instead of JIT-building. It
compiles exactly the source list of the JIT build (seqrec_fast/ops/sources.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def _load_by_path(name: str, path: Path):
    """Import one of the package's torch-free modules without importing the package."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _extension():
    import torch
    from torch.utils import cpp_extension

    sources = _load_by_path("_seqrec_fast_sources", ROOT / "seqrec_fast" / "ops" / "sources.py")
    toolkits = _load_by_path("_seqrec_fast_cuda_toolkit", ROOT / "seqrec_fast" / "ops" / "cuda_toolkit.py")

    csrc = ROOT / "csrc"
    cpu_files = [str(p.relative_to(ROOT)) for p in sources.cpu_sources(csrc)]
    # No -march=native: a prebuilt library may travel. -fopenmp: at::parallel_for is an OpenMP
    # pragma in ATen's headers, so without it our CPU kernels would run on one thread.
    cflags = ["-O3", "-fno-math-errno", "-fopenmp"]

    want_cuda = os.environ.get("SEQREC_FAST_BUILD_CUDA", "auto") not in {"0", "false", "no"}
    toolkit = toolkits.find_cuda_toolkit() if want_cuda and torch.version.cuda else None
    if toolkit is None:
        print("setup.py: building the CPU operators only", file=sys.stderr)
        return cpp_extension.CppExtension("seqrec_fast._C", cpu_files, extra_compile_args={"cxx": cflags})

    os.environ.setdefault("CUDA_HOME", str(toolkit.home))
    if not torch.cuda.is_available():  # no device to ask: Ampere and Hopper, unless told
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    cpp_extension.CUDA_HOME = str(toolkit.home)
    link_dir = toolkits.cudart_link_dir(toolkit, ROOT / "build" / "toolkit-links")
    cuda_files = [str(p.relative_to(ROOT)) for p in sources.cuda_sources(csrc)]
    define = "-DSEQREC_FAST_WITH_CUDA"
    print(f"setup.py: building the CPU and CUDA operators with {toolkit.describe()}", file=sys.stderr)
    return cpp_extension.CUDAExtension(
        "seqrec_fast._C",
        cpu_files + cuda_files,
        include_dirs=[str(d) for d in toolkit.include_dirs],
        library_dirs=[str(d) for d in ([link_dir] if link_dir else [])],
        extra_compile_args={
            "cxx": cflags + [define],
            "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr", define],
        },
        extra_link_args=[f"-Wl,-rpath,{d}" for d in toolkit.library_dirs],
    )


if __name__ == "__main__":
    from torch.utils.cpp_extension import BuildExtension

    setup(
        name="seqrec-fast-ops",
        packages=[],  # the Python package is installed by pip (maturin); this builds one library
        ext_modules=[_extension()],
        cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
    )
