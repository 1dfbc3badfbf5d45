"""The JIT build of csrc/: fallbacks that say why, a cache that survives killed builds, and the
CUDA toolkit layouts PyPI ships."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seqrec_fast.ops import build, sources
from seqrec_fast.ops.cuda_toolkit import CudaToolkit, cudart_link_dir, find_cuda_toolkit

# A build of library.cpp alone: real compiler work, a few seconds instead of a minute.
_SMALL_BUILD = textwrap.dedent(
    """
    import sys
    from seqrec_fast.ops import build, sources
    plan = build.BuildPlan("cpu", (sources.csrc_dir() / "library.cpp",), ("-O0",))
    path, _ = build.build_variant(plan)
    print(path)
    """
)


def _run_python(code: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def cache_env(tmp_path) -> dict:
    env = dict(os.environ)
    env["SEQREC_FAST_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("SEQREC_FAST_NO_EXT", None)
    return env


def test_doctor_json_reports_cpu_ops_and_rust_loader():
    out = subprocess.run(
        [sys.executable, "-m", "seqrec_fast.cli", "doctor", "--json"],
        capture_output=True, text=True, timeout=900, check=True,
    )
    report = json.loads(out.stdout)
    assert report["ops"]["cpu"]["built"], report["ops"]
    assert report["ops"]["build_info"].startswith("cpu")
    assert report["rust_loader"]["built"], report["rust_loader"]
    assert report["torch"]["version"]
    if not report["ops"]["cuda"]["built"]:
        assert report["ops"]["cuda"]["reason"]  # a fallback always says why


def test_killed_build_is_rebuilt_instead_of_hanging(cache_env, tmp_path):
    """Kill a build while the compiler runs, then build again: it must finish, not wait on a lock."""
    victim = subprocess.Popen(
        [sys.executable, "-c", _SMALL_BUILD], env=cache_env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    ops_dir = Path(cache_env["SEQREC_FAST_CACHE_DIR"]) / "ops"
    deadline = time.monotonic() + 120
    while not list(ops_dir.glob("cpu-*/build.ninja")) and time.monotonic() < deadline:
        if victim.poll() is not None:
            pytest.fail(f"the build ended before it could be killed: {victim.stderr.read().decode()}")
        time.sleep(0.05)
    time.sleep(1.0)  # let ninja start the compiler
    assert victim.poll() is None, "the build finished before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)  # the compiler and ninja go with it
    victim.wait()
    build_dir = next(p for p in ops_dir.glob("cpu-*") if p.is_dir())  # not the .lock beside it
    assert not (build_dir / "build.json").exists()
    # What torch's FileBaton (torch < 2.9) leaves behind when its holder dies mid-build.
    (build_dir / "lock").write_text("")

    again = _run_python(_SMALL_BUILD, cache_env, timeout=300)
    assert again.returncode == 0, again.stderr
    library = Path(again.stdout.strip().splitlines()[-1])
    assert library.is_file()
    assert (build_dir / "build.json").is_file()

    # A finished build is reused without compiling again.
    third = _run_python(_SMALL_BUILD, cache_env, timeout=120)
    assert third.returncode == 0 and "building" not in third.stderr


def test_disabled_extension_falls_back_with_one_warning(cache_env):
    cache_env["SEQREC_FAST_NO_EXT"] = "1"
    code = textwrap.dedent(
        """
        import warnings, json
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            from seqrec_fast.ops import load
            first, second = load(), load()
        print(json.dumps({"native": first.native, "same": first is second,
                          "warnings": [str(w.message) for w in caught]}))
        """
    )
    out = _run_python(code, cache_env, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {
        "native": False,
        "same": True,
        "warnings": [
            "seqrec_fast: native operators unavailable, using the pure-PyTorch references "
            "(slower): disabled by SEQREC_FAST_NO_EXT=1"
        ],
    }


def test_broken_source_falls_back_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_FAST_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken_op.cpp"
    broken.write_text("int seqrec_fast_broken( { return 0; }\n")
    monkeypatch.setattr(sources, "cpu_sources", lambda root=None: [broken])
    monkeypatch.setattr(build, "_prebuilt_library", lambda: None)

    status = build._build_and_load(force_cuda=False, verbose=False)

    assert not status.native and not status.cpu.built
    assert "CPU build failed" in status.cpu.reason and "error" in status.cpu.reason
    assert "broken_op.cpp" in status.cpu.reason
    log = next((tmp_path / "cache" / "ops").glob("cpu-*/build-error.log"))
    assert "broken_op.cpp" in log.read_text()
    with pytest.warns(RuntimeWarning, match="pure-PyTorch references.*CPU build failed"):
        build._warn_about_fallbacks(status)


def test_sources_with_the_same_stem_are_refused(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cuda").mkdir()
    for name in ("library.cpp", "cpu/scan.cpp", "cuda/scan.cu"):
        (tmp_path / name).write_text("")
    assert [p.name for p in sources.cpu_sources(tmp_path)] == ["library.cpp", "scan.cpp"]
    with pytest.raises(ValueError, match="share the file name stem 'scan'"):
        sources.cuda_sources(tmp_path)


def test_every_source_is_in_exactly_one_variant():
    root = sources.csrc_dir()
    cpu = set(sources.cpu_sources(root))
    cuda = set(sources.cuda_sources(root))
    compiled = {p for p in sources.all_source_files(root) if p.suffix in {".cpp", ".cu"}}
    assert not cpu & cuda
    assert cpu | cuda == compiled, "a source outside csrc/, csrc/cpu/ or csrc/cuda/ is never compiled"


def test_cache_key_follows_source_content_and_flags():
    plan = build.plan_cpu()
    other_flags = build.BuildPlan("cpu", plan.sources, plan.cflags + ("-DEXTRA",))
    assert plan.cache_key() == build.plan_cpu().cache_key()
    assert plan.cache_key() != other_flags.cache_key()


def test_pip_wheel_layout_gets_a_plain_libcudart_link(tmp_path):
    home = tmp_path / "nvidia" / "cu13"
    (home / "bin").mkdir(parents=True)
    (home / "lib").mkdir()
    (home / "bin" / "nvcc").write_text("#!/bin/sh\n")
    real = home / "lib" / "libcudart.so.13"
    real.write_text("")
    toolkit = CudaToolkit(home, home / "bin" / "nvcc", (home / "include",), (home / "lib",), "test")

    link_dir = cudart_link_dir(toolkit, tmp_path / "links")
    assert (link_dir / "libcudart.so").resolve() == real.resolve()
    assert cudart_link_dir(toolkit, tmp_path / "links") == link_dir  # idempotent

    (home / "lib" / "libcudart.so").symlink_to(real)  # a system-style layout needs no link
    assert cudart_link_dir(toolkit, tmp_path / "other") is None


def test_cuda_home_from_the_environment_wins(tmp_path, monkeypatch):
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "lib64").mkdir()
    (home / "bin" / "nvcc").write_text("")
    monkeypatch.setenv("CUDA_HOME", str(home))
    found = find_cuda_toolkit()
    assert found is not None and found.home == home and found.library_dirs == (home / "lib64",)
