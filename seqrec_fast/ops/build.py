"""JIT build of the C++/CUDA operators in csrc/ (torch.utils.cpp_extension + ninja).

One shared library is built and loaded per process, in one of two variants:

* ``cpu``: the library declaration, op schemas and CPU kernels;
* ``cuda``: the same plus the CUDA kernels, built when torch has CUDA and a device is present,
  or when ``SEQREC_FAST_BUILD_CUDA=1`` asks for it on a machine without one (CI does this).

A prebuilt library from ``python setup.py build_ext --inplace`` (``seqrec_fast/_C*.so``) is
loaded instead when present. ``SEQREC_FAST_NO_EXT=1`` disables native ops altogether. Whatever
fails, the caller gets a :class:`OpsStatus` saying why, and the ops fall back to the pure-PyTorch
references with a single warning.

Builds are cached under ``$SEQREC_FAST_CACHE_DIR`` (default ``~/.cache/seqrec_fast``) in a folder
keyed on the sources' content, the torch and CUDA versions, the target architectures and the
flags. Concurrent builds of the same key are serialised by an OS-level lock (released by the
kernel when its holder dies), and a lock *file* left behind by a killed build (torch's
FileBaton in older versions blocks on its mere existence) is removed before building, so an
interrupted build is redone instead of hanging every later import.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic_io import atomic_write_json
from . import sources
from .cuda_toolkit import CudaToolkit, cudart_link_dir, find_cuda_toolkit, matching_nvcc_requirement

LIBRARY_NAMESPACE = "seqrec_fast"
_DEFAULT_FORCED_ARCHS = "8.0;9.0"  # A100 and H100/H200, when no device says which


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_root() -> Path:
    root = os.environ.get("SEQREC_FAST_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seqrec_fast"


@dataclass
class VariantStatus:
    """Whether one kind of kernel (CPU or CUDA) is available natively, and why not."""

    built: bool = False
    reason: str | None = None
    library: str | None = None
    build_seconds: float | None = None


@dataclass
class OpsStatus:
    cpu: VariantStatus = field(default_factory=VariantStatus)
    cuda: VariantStatus = field(default_factory=VariantStatus)
    loaded: str = "reference"  # "cuda", "cpu", "prebuilt" or "reference"
    build_info: str | None = None
    cuda_runtime: str | None = None

    @property
    def native(self) -> bool:
        return self.loaded != "reference"

    def has_kernels_for(self, device_type: str) -> bool:
        if device_type == "cpu":
            return self.cpu.built
        if device_type == "cuda":
            return self.cuda.built
        return False

    def to_dict(self) -> dict:
        return {**asdict(self), "native": self.native}


class OpsBuildError(RuntimeError):
    """A variant failed to compile or load; the message holds the compiler's output."""


# --------------------------------------------------------------------------------------------
# What to build


def _cuda_arch_list() -> str:
    explicit = os.environ.get("SEQREC_FAST_CUDA_ARCHS") or os.environ.get("TORCH_CUDA_ARCH_LIST")
    if explicit:
        return explicit
    if torch.cuda.is_available():
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{major}.{minor}" for major, minor in sorted(caps))
    return _DEFAULT_FORCED_ARCHS


def _host_cpu_signature() -> str:
    """The CPU features -march=native compiles for: builds are not shared across CPU kinds."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return line
    return platform.machine()


@dataclass(frozen=True)
class BuildPlan:
    variant: str  # "cpu" or "cuda"
    sources: tuple[Path, ...]
    cflags: tuple[str, ...]
    cuda_cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    include_dirs: tuple[Path, ...] = ()
    arch_list: str | None = None
    toolkit: CudaToolkit | None = None

    @property
    def library_name(self) -> str:
        return f"seqrec_fast_ops_{self.variant}"

    def cache_key(self) -> str:
        digest = hashlib.sha256()
        for path in sources.all_source_files():
            digest.update(str(path.relative_to(sources.csrc_dir())).encode())
            digest.update(path.read_bytes())
        for part in (
            self.variant,
            torch.__version__,
            str(torch.version.cuda),
            sys.version.split()[0],
            platform.machine(),
            _host_cpu_signature(),
            " ".join(self.cflags),
            " ".join(self.cuda_cflags),
            str(self.arch_list),
            str(self.toolkit.nvcc if self.toolkit else None),
        ):
            digest.update(part.encode())
        return digest.hexdigest()[:16]

    def build_dir(self) -> Path:
        return cache_root() / "ops" / f"{self.variant}-{self.cache_key()}"


def _cpu_cflags(cuda: bool) -> tuple[str, ...]:
    # -fopenmp: at::parallel_for is an OpenMP pragma in ATen's headers, serial without it.
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp"]
    if cuda:
        flags.append("-DSEQREC_FAST_WITH_CUDA")
    return tuple(flags)


def plan_cpu() -> BuildPlan:
    return BuildPlan("cpu", tuple(sources.cpu_sources()), _cpu_cflags(cuda=False))


def plan_cuda(toolkit: CudaToolkit) -> BuildPlan:
    scratch = cache_root() / "toolkit-links" / hashlib.sha256(str(toolkit.nvcc).encode()).hexdigest()[:12]
    link_dir = cudart_link_dir(toolkit, scratch)
    ldflags = [f"-L{d}" for d in ([link_dir] if link_dir else [])]
    ldflags += [f"-Wl,-rpath,{d}" for d in toolkit.library_dirs]
    return BuildPlan(
        "cuda",
        tuple(sources.cpu_sources() + sources.cuda_sources()),
        _cpu_cflags(cuda=True),
        cuda_cflags=("-O3", "-lineinfo", "--expt-relaxed-constexpr", "-DSEQREC_FAST_WITH_CUDA"),
        ldflags=tuple(ldflags),
        include_dirs=toolkit.include_dirs,
        arch_list=_cuda_arch_list(),
        toolkit=toolkit,
    )


# --------------------------------------------------------------------------------------------
# Building


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    """An flock: the kernel drops it if the holder is killed, so it can never go stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _patched_environment(plan: BuildPlan):
    """Point torch's cpp_extension at the chosen toolkit and architectures for one build."""
    import torch.utils.cpp_extension as cpp_extension

    saved_env = {k: os.environ.get(k) for k in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS")}
    saved_home = cpp_extension.CUDA_HOME
    try:
        if plan.toolkit is not None:
            os.environ["CUDA_HOME"] = str(plan.toolkit.home)
            cpp_extension.CUDA_HOME = str(plan.toolkit.home)
            os.environ["TORCH_CUDA_ARCH_LIST"] = plan.arch_list or _DEFAULT_FORCED_ARCHS
        if not saved_env["MAX_JOBS"]:
            os.environ["MAX_JOBS"] = str(max(1, os.cpu_count() or 1))
        yield cpp_extension
    finally:
        cpp_extension.CUDA_HOME = saved_home
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _library_path(build_dir: Path, name: str) -> Path:
    return build_dir / f"{name}.so"


def build_variant(plan: BuildPlan, verbose: bool = False) -> tuple[Path, float]:
    """Compile (or reuse) the library of one plan; returns its path and the build's seconds."""
    build_dir = plan.build_dir()
    marker = build_dir / "build.json"
    library = _library_path(build_dir, plan.library_name)
    with _exclusive_lock(build_dir.with_suffix(".lock")):
        if marker.is_file() and library.is_file():
            return library, 0.0
        build_dir.mkdir(parents=True, exist_ok=True)
        # We hold the only lock for this folder, so a torch lock file here is a killed build's.
        (build_dir / "lock").unlink(missing_ok=True)
        print(
            f"seqrec_fast: building the {plan.variant.upper()} operators in {build_dir} "
            "(first use only, about a minute)...",
            file=sys.stderr,
            flush=True,
        )
        started = time.perf_counter()
        with _patched_environment(plan) as cpp_extension:
            try:
                cpp_extension.load(
                    name=plan.library_name,
                    sources=[str(p) for p in plan.sources],
                    extra_cflags=list(plan.cflags),
                    extra_cuda_cflags=list(plan.cuda_cflags),
                    extra_ldflags=list(plan.ldflags),
                    extra_include_paths=[str(p) for p in plan.include_dirs],
                    build_directory=str(build_dir),
                    with_cuda=plan.variant == "cuda",
                    is_python_module=False,
                    verbose=verbose,
                )
            except Exception as error:  # compiler errors arrive as RuntimeError with the log
                log = build_dir / "build-error.log"
                log.write_text(str(error))
                raise OpsBuildError(f"{_summarise(str(error))} (full log: {log})") from error
        seconds = time.perf_counter() - started
        atomic_write_json(
            marker,
            {"library": str(library), "seconds": round(seconds, 1), "torch": torch.__version__,
             "arch_list": plan.arch_list, "toolkit": str(plan.toolkit.nvcc) if plan.toolkit else None},
        )
        return library, seconds


_COMPILER_ERROR = re.compile(r"\berror\b\s*:|\berror detected|: fatal error|undefined reference")


def _summarise(message: str, lines: int = 12) -> str:
    """The lines of a compiler log that say what broke (not the command lines that ran)."""
    text = [ln for ln in message.splitlines() if ln.strip()]
    errors = [ln for ln in text if _COMPILER_ERROR.search(ln) and not ln.lstrip().startswith("[")]
    picked = errors[:lines] if errors else text[-lines:]
    return "\n".join(picked)


# --------------------------------------------------------------------------------------------
# Loading (once per process)

_status: OpsStatus | None = None
_status_lock = threading.Lock()


def _prebuilt_library() -> Path | None:
    """The library `python setup.py build_ext --inplace` made, unless sources changed since."""
    package_dir = Path(__file__).resolve().parent.parent
    found = sorted(package_dir.glob("_C*.so"))
    if not found:
        return None
    newest_source = max(p.stat().st_mtime for p in sources.all_source_files())
    if found[0].stat().st_mtime < newest_source:
        warnings.warn(
            f"seqrec_fast: ignoring {found[0]}: csrc/ changed after it was built; JIT-building "
            "instead (rerun `python setup.py build_ext --inplace` to refresh it)",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    return found[0]


def _load_library(path: Path, status: OpsStatus) -> None:
    torch.ops.load_library(str(path))
    status.build_info = torch.ops.seqrec_fast.build_info()
    if "+cuda" in status.build_info:
        status.cuda_runtime = torch.ops.seqrec_fast.cuda_runtime_info()


def _want_cuda() -> tuple[bool, str | None]:
    """Whether to build the CUDA variant, and if not, why."""
    forced = _env_flag("SEQREC_FAST_BUILD_CUDA")
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is built without CUDA"
    if not forced and not torch.cuda.is_available():
        return False, "no CUDA device (SEQREC_FAST_BUILD_CUDA=1 compiles the CUDA ops anyway)"
    return True, None


def _build_and_load(force_cuda: bool | None, verbose: bool) -> OpsStatus:
    status = OpsStatus()
    if _env_flag("SEQREC_FAST_NO_EXT"):
        status.cpu.reason = status.cuda.reason = "disabled by SEQREC_FAST_NO_EXT=1"
        return status

    prebuilt = _prebuilt_library()
    if prebuilt is not None:
        _load_library(prebuilt, status)
        status.loaded = "prebuilt"
        status.cpu = VariantStatus(True, library=str(prebuilt))
        if status.cuda_runtime is not None:
            status.cuda = VariantStatus(True, library=str(prebuilt))
        else:
            status.cuda.reason = "the prebuilt library (setup.py) was compiled without CUDA"
        return status

    want_cuda, why_not = (True, None) if force_cuda else _want_cuda()
    if force_cuda is False:
        want_cuda, why_not = False, "not requested"
    if want_cuda:
        toolkit = find_cuda_toolkit()
        if toolkit is None:
            requirement = matching_nvcc_requirement(torch.version.cuda)
            why_not = f"nvcc not found (set CUDA_HOME, or pip install '{requirement}')"
        else:
            try:
                library, seconds = build_variant(plan_cuda(toolkit), verbose)
                _load_library(library, status)
                status.loaded = "cuda"
                status.cpu = VariantStatus(True, library=str(library), build_seconds=seconds)
                status.cuda = VariantStatus(True, library=str(library), build_seconds=seconds)
                return status
            except Exception as error:  # fall back to the CPU variant, saying why
                why_not = f"CUDA build failed with {toolkit.describe()}: {error}"
    status.cuda.reason = why_not

    try:
        library, seconds = build_variant(plan_cpu(), verbose)
        _load_library(library, status)
        status.loaded = "cpu"
        status.cpu = VariantStatus(True, library=str(library), build_seconds=seconds)
    except Exception as error:
        status.cpu.reason = f"CPU build failed: {error}"
    return status


def load(force_cuda: bool | None = None, verbose: bool = False) -> OpsStatus:
    """Build if needed and load the operator library once; returns what is available.

    ``force_cuda=True`` builds the CUDA variant even without a device (``ops build --cuda``);
    ``False`` builds only the CPU variant; ``None`` decides from the machine and the environment.
    """
    global _status
    with _status_lock:
        if _status is None:
            if force_cuda is None and verbose is False:
                verbose = _env_flag("SEQREC_FAST_VERBOSE_BUILD")
            _status = _build_and_load(force_cuda, verbose)
            _warn_about_fallbacks(_status)
        return _status


def _warn_about_fallbacks(status: OpsStatus) -> None:
    if not status.cpu.built:
        warnings.warn(
            "seqrec_fast: native operators unavailable, using the pure-PyTorch references "
            f"(slower): {status.cpu.reason}",
            RuntimeWarning,
            stacklevel=3,
        )
    elif torch.cuda.is_available() and not status.cuda.built:
        warnings.warn(
            "seqrec_fast: CUDA operators unavailable, CUDA tensors use the pure-PyTorch "
            f"references (slower): {status.cuda.reason}",
            RuntimeWarning,
            stacklevel=3,
        )
