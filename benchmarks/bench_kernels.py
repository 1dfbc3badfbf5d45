"""Microbenchmark of the fused operators: ours vs the eager reference vs torch.compile(reference).

For each op at shapes typical of the five searches (B 256; L 50 and 200; d 64-256; heads 2-8;
an M = 6 grid; 36 CANet routes) it times the forward pass and forward+backward, and reports the
achieved GB/s and TFLOP/s next to the device's peak (on a CPU, the measured copy bandwidth and
the measured large-GEMM rate; on a GPU, the datasheet figures), and its % of roofline: the time
the row's bytes and FLOPs need at those peaks (the longer of the two) over the measured time.
For sliced_linear it also times uniform widths 1/6..6/6 of d against the FLOPs they need, and
for the fused full-softmax CE (ML-20M's 26,744 items) the device's default chunking and 4-64
times fewer chunks. Each time is the fastest call of its variant, and the variants of a case
take turns (five turns each over --min-seconds), so that a slow spell of a shared machine does
not land on one variant alone.

    python benchmarks/bench_kernels.py                       # the device of the first GPU, or CPU
    python benchmarks/bench_kernels.py --device cpu --batch 32   # smaller batch on a small CPU

Writes benchmarks/results/kernels_<device>.json (the machine, the exact shapes and every row)
and prints a table. FLOPs count the multiply-adds the op needs (2 per MAC); bytes count each
input read once and each output written once; forward+backward counts 3x the forward FLOPs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import seqrec_fast.ops as ops  # noqa: E402
from _results import cpu_name, write_result  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)
from seqrec_fast.ops import reference  # noqa: E402
from seqrec_fast.train.fused_cross_entropy import chunk_rows, default_block_elements, linear_cross_entropy  # noqa: E402

# Datasheet peaks (dense): memory GB/s, and TFLOP/s for fp32 (CUDA cores) and bf16 (tensor cores).
GPU_PEAKS = {
    "H100 SXM": (3350.0, 67.0, 989.0),
    "H100 PCIe": (2000.0, 51.0, 756.0),
    "H100": (3350.0, 67.0, 989.0),
    "H200": (4800.0, 67.0, 989.0),
    "A100": (2039.0, 19.5, 312.0),
}


@dataclass
class Case:
    op: str
    shape: str
    make: Callable[[], tuple[Callable, Callable, list]]  # -> ours, reference, inputs
    flops: float
    bytes: float
    group: str = ""  # rows compared against each other (sliced_linear widths)
    needed_fraction: float | None = None


@dataclass
class Row:
    op: str
    shape: str
    variant: str  # "ours", "eager", "compiled"
    pass_: str  # "fwd" or "fwd+bwd"
    ms: float
    gbps: float
    tflops: float
    group: str = ""
    needed_fraction: float | None = None
    bytes: float = 0.0  # the roofline's bytes moved and FLOPs for this pass
    flops: float = 0.0
    roofline_ms: float | None = None  # the time at the device's peak for these bytes and FLOPs
    roofline_pct: float | None = None  # roofline_ms / ms, in percent
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Machine


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], device: str, min_seconds: float, max_reps: int = 200, min_reps: int = 3,
            warm_up: bool = True) -> float:
    """Fastest seconds per call, after a warm-up call, over about ``min_seconds`` of repeats: on
    a shared machine other work only ever adds time, so the minimum is the op's own cost."""
    if warm_up:
        fn()
        synchronize(device)
    times = []
    started = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - started < min_seconds):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def device_peaks(device: str, dtype: torch.dtype) -> dict:
    if device == "cuda":
        name = torch.cuda.get_device_name()
        for key, (bw, fp32, bf16) in GPU_PEAKS.items():
            if key in name:
                return {"source": f"datasheet ({key})", "gbps": bw, "tflops": fp32 if dtype == torch.float32 else bf16}
        return {"source": f"unknown GPU {name}", "gbps": None, "tflops": None}
    a = torch.empty(64 * 2**20 // 4)
    b = torch.empty_like(a)
    copy_s = measure(lambda: b.copy_(a), device, 0.5)
    m = torch.randn(1024, 1024)
    gemm_s = measure(lambda: m @ m, device, 0.5)
    return {
        "source": "measured: 64 MiB copy, 1024^3 fp32 GEMM",
        "gbps": round(2 * a.numel() * 4 / copy_s / 1e9, 2),
        "tflops": round(2 * 1024**3 / gemm_s / 1e12, 4),
    }


# ---------------------------------------------------------------------------------------------
# Cases


def _leaf(*shape, device, dtype, scale=1.0):
    return (torch.randn(*shape, device=device, dtype=dtype) * scale).requires_grad_(True)


def _linear_leaves(rows, d, kw):
    return _leaf(rows, d, **kw), _leaf(d, d, **kw, scale=d**-0.5), _leaf(d, **kw)


def build_cases(batch: int, device: str, dtype: torch.dtype, quick: bool) -> list[Case]:
    elt = torch.empty((), dtype=dtype).element_size()
    kw = {"device": device, "dtype": dtype}
    cases: list[Case] = []
    lengths = [50] if quick else [50, 200]
    widths = [64, 256] if quick else [64, 128, 256]

    for length in lengths:
        n = batch * length
        for d in widths:
            # ADT: one d x d projection of the grid, M = 6, blended (shared x) and per corner.
            def grid_make(d=d, length=length, per_corner=False):
                x = _leaf(*((4,) if per_corner else ()), batch, length, d, **kw)
                w = _leaf(6, 6, d, d, **kw, scale=d**-0.5)
                b = _leaf(6, 6, d, **kw)
                coords = (0.37, 0.81)
                blend = not per_corner
                return (
                    lambda x, w, b: ops.grid_linear(x, w, b, coords, blend, per_corner=per_corner),
                    lambda x, w, b: reference.grid_linear(x, w, b, coords, blend, per_corner=per_corner),
                    [x, w, b],
                )

            cases.append(Case("grid_linear", f"blend B{batch} L{length} d{d} M6", grid_make,
                              2 * n * d * d, (2 * n * d + 4 * d * d) * elt))
            cases.append(Case("grid_linear", f"corners B{batch} L{length} d{d} M6",
                              lambda f=grid_make: f(per_corner=True), 4 * 2 * n * d * d, (8 * n * d + 4 * d * d) * elt))

            # AdaRec / EASRec: 8 candidate outputs mixed by softmax weights.
            def mix_make(d=d, length=length):
                h = _leaf(8, batch, length, d, **kw)
                w = torch.softmax(torch.randn(8, device=device), 0).to(dtype).requires_grad_(True)
                return ops.mix, reference.mix, [h, w]

            cases.append(Case("mix", f"K8 B{batch} L{length} d{d}", mix_make, 2 * 8 * n * d, 9 * n * d * elt))

            # NextItNet: kernel 3, dilations 1 and 4.
            for dilation in (1, 4):
                def conv_make(d=d, length=length, dilation=dilation):
                    x = _leaf(batch, length, d, **kw)
                    w = _leaf(d, d, 3, **kw, scale=(3 * d) ** -0.5)
                    b = _leaf(d, **kw)
                    return (
                        lambda x, w, b: ops.causal_conv1d(x, w, b, dilation),
                        lambda x, w, b: reference.causal_conv1d(x, w, b, dilation),
                        [x, w, b],
                    )

                taps = min(3, (length - 1) // dilation + 1)
                cases.append(Case("causal_conv1d", f"B{batch} L{length} d{d} k3 dil{dilation}", conv_make,
                                  2 * n * d * d * taps, (2 * n * d + 3 * d * d) * elt))

            # EASRec: linear attention, heads 2 and 8, causal with padding; one non-causal row.
            for heads in (2, 8):
                for causal in (True, False) if heads == 2 and d == 128 else (True,):
                    def attn_make(d=d, length=length, heads=heads, causal=causal):
                        q, k, v = (_leaf(batch, heads, length, d // heads, **kw) for _ in range(3))
                        mask = torch.arange(length, device=device)[None, :] < torch.randint(0, length, (batch, 1), device=device)
                        return (
                            lambda q, k, v: ops.linear_attention(q, k, v, mask, causal),
                            lambda q, k, v: reference.linear_attention(q, k, v, mask, causal),
                            [q, k, v],
                        )

                    cases.append(Case("linear_attention", f"B{batch} H{heads} L{length} d{d} {'causal' if causal else 'full'}",
                                      attn_make, 4 * n * d * (d // heads), 4 * n * d * elt))

    # Every backbone: dropout 0.5 on hidden states [B, L, d] and attention probabilities
    # [B, H, L, L]. The eager baseline is torch's own F.dropout (the reference op re-implements
    # our hash in PyTorch only to test the kernels bit for bit).
    for length in lengths:
        for shape in ([batch, length, 64], [batch, 2, length, length]):
            def dropout_make(shape=shape):
                torch_dropout = lambda x: torch.nn.functional.dropout(x, 0.5, training=True)  # noqa: E731
                return (lambda x: ops.dropout(x, 0.5), torch_dropout, [_leaf(*shape, **kw)])

            numel = 1
            for size in shape:
                numel *= size
            cases.append(Case("dropout", "x".join(map(str, shape)) + " p0.5", dropout_make, 0.0, 2 * numel * elt))

    # CANet: a d = 256 layer; uniform widths k/6 of d (time against FLOPs), and 36 routes.
    length, d = 50, 256
    n = batch * length
    for k in range(1, 7):
        width = d * k // 6

        def sliced_make(width=width):
            x, w, b = _linear_leaves(n, d, kw)
            return (
                lambda x, w, b: ops.sliced_linear(x, w, b, width, width),
                lambda x, w, b: reference.sliced_linear(x, w, b, width, width),
                [x, w, b],
            )

        cases.append(Case("sliced_linear", f"N{n} d{d} width {k}/6", sliced_make, 2 * n * width * width,
                          (n * width * 2 + width * width) * elt, group="widths", needed_fraction=(k / 6) ** 2))

    def routed_make():
        gen = torch.Generator().manual_seed(0)
        levels = torch.tensor([d * k // 6 for k in range(1, 7)])
        in_f = levels[torch.randint(0, 6, (n,), generator=gen)].to(device)
        out_f = levels[torch.randint(0, 6, (n,), generator=gen)].to(device)
        x, w, b = _linear_leaves(n, d, kw)
        return (
            lambda x, w, b: ops.sliced_linear(x, w, b, in_f, out_f),
            lambda x, w, b: reference.sliced_linear(x, w, b, in_f, out_f),
            [x, w, b],
        )

    cases += ce_cases(batch, device, dtype, elt)

    mean_fraction = (sum(k / 6 for k in range(1, 7)) / 6) ** 2  # E[in] E[out] / d^2, independent levels
    cases.append(Case("sliced_linear", f"N{n} d{d} 36 routes", routed_make, 2 * n * d * d * mean_fraction,
                      (2 * n * d + d * d) * elt, group="routes", needed_fraction=mean_fraction))
    return cases


ML20M_ITEMS = 26_744


def ce_cases(batch: int, device: str, dtype: torch.dtype, elt: int) -> list[Case]:
    """The fused full-softmax CE at ML-20M scale (L 200, d 64) at 1 to 64 times the device's
    default chunk rows (train/fused_cross_entropy.py), against the unfused loss: how the time
    scales with the chunk count. Its roofline is the fused ideal: the GEMMs (forward, and the
    backward's recomputation and two products), and the inputs read once, no logits in memory."""
    rows, d = batch * 200, 64
    default_rows = chunk_rows(ML20M_ITEMS, default_block_elements(torch.device(device)))
    cases = []
    for factor in (1, 4, 16, 64):
        chunk = default_rows * factor
        chunks = -(-rows // chunk)

        def ce_make(chunk=chunk):
            hidden = _leaf(rows, d, device=device, dtype=dtype)
            weight = _leaf(ML20M_ITEMS, d, device=device, dtype=dtype, scale=d**-0.5)
            targets = torch.randint(0, ML20M_ITEMS, (rows,), device=device)
            return (
                lambda h, w: linear_cross_entropy(h, w, None, targets, block_elements=chunk * ML20M_ITEMS),
                lambda h, w: torch.nn.functional.cross_entropy((h @ w.t()).float(), targets),
                [hidden, weight],
            )

        cases.append(Case("linear_cross_entropy", f"N{rows} V{ML20M_ITEMS} d{d} {chunks} chunks", ce_make,
                          2 * rows * d * ML20M_ITEMS, (rows + ML20M_ITEMS) * d * elt, group="ce_chunks"))
        if chunks == 1:
            break
    return cases


# ---------------------------------------------------------------------------------------------
# Running


TURNS = 5  # turns each variant of a case takes (see time_case)


def time_case(case: Case, device: str, min_seconds: float, compile_reference: bool) -> list[Row]:
    """Every variant and pass of one case. The variants take TURNS turns each, in rotation, each
    turn about min_seconds / TURNS long, and each keeps its fastest call: a slow spell of a
    shared machine then slows every variant's turns alike instead of one variant's whole
    measurement."""
    ours, ref, inputs = case.make()
    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    variants = {"ours": ours, "eager": ref}
    if compile_reference:
        torch._dynamo.reset()  # each case compiles afresh: no recompile limit, no stale graphs
        variants["compiled"] = torch.compile(ref, dynamic=False)
    with torch.no_grad():
        upstream = torch.randn_like(ours(*inputs))
    timed = {}
    for variant, fn in variants.items():
        def forward(fn=fn):
            with torch.no_grad():
                return fn(*inputs)

        def forward_backward(fn=fn):
            out = fn(*inputs)
            return torch.autograd.grad(out, leaves, upstream)

        timed[variant, "fwd"], timed[variant, "fwd+bwd"] = forward, forward_backward
    seconds = {key: math.inf for key in timed}
    for turn in range(TURNS):
        for key, fn_timed in timed.items():
            seconds[key] = min(seconds[key], measure(fn_timed, device, min_seconds / TURNS, min_reps=1,
                                                     warm_up=turn == 0))
    rows = []
    for (variant, pass_), best in seconds.items():
        factor = 1 if pass_ == "fwd" else 3
        rows.append(Row(case.op, case.shape, variant, pass_, best * 1e3, factor * case.bytes / best / 1e9,
                        factor * case.flops / best / 1e12, case.group, case.needed_fraction,
                        factor * case.bytes, factor * case.flops))
    return rows


def add_roofline(rows: list[Row], peak: dict) -> None:
    """Each row's roofline: the time its bytes take at the peak bandwidth or its FLOPs at the peak
    rate, whichever is longer (what no kernel beats), and how close the measured time comes."""
    if not peak.get("gbps") or not peak.get("tflops"):
        return
    for r in rows:
        r.roofline_ms = max(r.bytes / (peak["gbps"] * 1e9), r.flops / (peak["tflops"] * 1e12)) * 1e3
        r.roofline_pct = 100 * r.roofline_ms / r.ms


def print_table(rows: list[Row]) -> None:
    by_key: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        by_key.setdefault((r.op, r.shape, r.pass_), {})[r.variant] = r
    header = f"{'op':<17} {'shape':<34} {'pass':<8} {'ours ms':>9} {'eager ms':>9} {'comp. ms':>9} {'x eager':>8} {'x comp.':>8} {'GB/s':>8} {'TFLOP/s':>8} {'% roof':>7}"
    print(header)
    print("-" * len(header))
    for (op, shape, pass_), v in by_key.items():
        ours, eager, comp = v.get("ours"), v.get("eager"), v.get("compiled")
        comp_ms = f"{comp.ms:9.3f}" if comp else f"{'-':>9}"
        x_comp = f"{comp.ms / ours.ms:8.2f}" if comp else f"{'-':>8}"
        roof = f"{ours.roofline_pct:7.1f}" if ours.roofline_pct is not None else f"{'-':>7}"
        print(f"{op:<17} {shape:<34} {pass_:<8} {ours.ms:9.3f} {eager.ms:9.3f} {comp_ms} {eager.ms / ours.ms:8.2f} {x_comp} {ours.gbps:8.1f} {ours.tflops:8.4f} {roof}")


def sliced_scaling(rows: list[Row]) -> list[dict]:
    """sliced_linear: time and FLOPs relative to full width; 'efficiency' = time saved / FLOPs saved."""
    out = []
    for pass_ in ("fwd", "fwd+bwd"):
        widths = [r for r in rows if r.op == "sliced_linear" and r.variant == "ours" and r.pass_ == pass_]
        full = next((r for r in widths if r.needed_fraction == 1.0), None)
        if full is None:
            continue
        for r in widths:
            time_fraction = r.ms / full.ms
            saved = 1 - r.needed_fraction
            out.append({
                "shape": r.shape, "pass": pass_, "flops_fraction": round(r.needed_fraction, 4),
                "time_fraction": round(time_fraction, 4),
                "efficiency": round((1 - time_fraction) / saved, 3) if saved > 0 else None,
            })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch", type=int, default=256, help="B (256 in the searches; smaller on a small CPU)")
    parser.add_argument("--quick", action="store_true", help="L 50 only and d 64/256 only")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile(reference)")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="time each measurement for about this long")
    parser.add_argument("--ops", nargs="*", default=None, help="only these ops (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    status = ops.load()
    if not ops.native_available(args.device):
        print(f"no native {args.device} kernels: {status.to_dict()}", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    cases = [c for c in build_cases(args.batch, args.device, dtype, args.quick) if not args.ops or c.op in args.ops]
    rows: list[Row] = []
    for case in tqdm(cases, desc="kernels", file=sys.stderr):
        rows += time_case(case, args.device, args.min_seconds, not args.no_compile)
    peak = device_peaks(args.device, dtype)
    add_roofline(rows, peak)
    print_table(rows)
    scaling = sliced_scaling(rows)
    for s in scaling:
        print(f"sliced_linear {s['pass']:<8} {s['shape']:<26} FLOPs x{s['flops_fraction']:.3f} time x{s['time_fraction']:.3f}"
              + (f"  (time saved / FLOPs saved = {s['efficiency']:.2f})" if s["efficiency"] is not None else ""))

    machine = {
        "device": args.device,
        "name": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "ops_build": status.build_info,
    }
    payload = {
        "benchmark": "kernels",
        "machine": machine,
        "peak": peak,
        "config": {"batch": args.batch, "dtype": args.dtype, "ops": args.ops, "quick": args.quick, "compiled_reference": not args.no_compile,
                   "min_seconds": args.min_seconds, "command": " ".join(sys.argv)},
        "rows": [asdict(r) for r in rows],
        "sliced_linear_scaling": scaling,
    }
    name = f"kernels_{args.device}" + ("" if args.dtype == "float32" else f"_{args.dtype}") + ".json"
    write_result(Path(args.out) / name, payload)
    print(f"wrote {Path(args.out) / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
