"""`seqrec-fast doctor`: what this machine offers and which native parts are built or fall back."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys


def _first_line(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text and out.returncode == 0 else None


def _compilers() -> dict:
    from .ops.cuda_toolkit import find_cuda_toolkit

    cxx = shutil.which("c++") or shutil.which("g++")
    toolkit = find_cuda_toolkit()
    nvcc_version = None
    if toolkit is not None:
        lines = subprocess.run([str(toolkit.nvcc), "--version"], capture_output=True, text=True).stdout
        nvcc_version = next((ln for ln in lines.splitlines() if "release" in ln), None)
    return {
        "cxx": cxx,
        "cxx_version": _first_line([cxx, "--version"]) if cxx else None,
        "ninja": _first_line(["ninja", "--version"]) if shutil.which("ninja") else None,
        "nvcc": str(toolkit.nvcc) if toolkit else None,
        "nvcc_origin": toolkit.origin if toolkit else None,
        "nvcc_version": nvcc_version,
    }


def _torch() -> dict:
    import torch

    info = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "devices": [],
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["devices"].append(
                {"name": props.name, "capability": f"{props.major}.{props.minor}",
                 "memory_gib": round(props.total_memory / 2**30, 1)}
            )
    return info


def _rust_loader() -> dict:
    try:
        from . import _loader
    except ImportError as error:
        return {"built": False, "reason": f"seqrec_fast._loader failed to import: {error}"}
    return {"built": True, "crate_version": _loader.crate_version(), "path": _loader.__file__}


def collect(build_ops: bool = True) -> dict:
    """Everything doctor reports, as one JSON-serialisable dict."""
    from . import __version__
    from .ops import load

    report = {
        "seqrec_fast": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": _torch(),
        "compilers": _compilers(),
        "rust_loader": _rust_loader(),
    }
    report["ops"] = load().to_dict() if build_ops else None
    return report


def format_report(report: dict) -> str:
    def mark(ok: bool) -> str:
        return "ok  " if ok else "FALLBACK"

    ops = report["ops"] or {}
    rust = report["rust_loader"]
    t = report["torch"]
    c = report["compilers"]
    lines = [
        f"seqrec_fast {report['seqrec_fast']}  python {report['python']}  {report['platform']}",
        f"torch       {t['version']} (CUDA build: {t['cuda_build']}, device available: {t['cuda_available']})",
    ]
    lines += [f"  device    {d['name']} sm_{d['capability'].replace('.', '')} {d['memory_gib']} GiB" for d in t["devices"]]
    lines += [
        f"c++         {c['cxx_version'] or 'not found'}",
        f"ninja       {c['ninja'] or 'not found'}",
        f"nvcc        {c['nvcc_version'] or 'not found'}" + (f"  [{c['nvcc']}]" if c["nvcc"] else ""),
        "",
        f"rust loader {mark(rust['built'])}  " + (rust.get("crate_version") or rust.get("reason", "")),
    ]
    if ops:
        cpu, cuda = ops["cpu"], ops["cuda"]
        lines.append(f"CPU ops     {mark(cpu['built'])}  " + (cpu["library"] if cpu["built"] else cpu["reason"] or ""))
        lines.append(f"CUDA ops    {mark(cuda['built'])}  " + (cuda["library"] if cuda["built"] else cuda["reason"] or ""))
        if ops.get("cuda_runtime"):
            lines.append(f"            {ops['cuda_runtime']}")
    return "\n".join(lines)
