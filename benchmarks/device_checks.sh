#!/usr/bin/env bash
# The GPU checks, prepared to fit a lent device machine's short lease (15 minutes of device time,
# 10 per command): two calls of the `device` tool's `run`, each with
#   carry: ["seqrec_fast/_loader.abi3.so"]     (the Rust loader built here; the machine has no cargo)
#   command: bash benchmarks/device_checks.sh checks      (timeout_s 580)
#   command: bash benchmarks/device_checks.sh compiled    (timeout_s 580; right after, while warm)
#
# checks:   build the CPU and CUDA operators; the CUDA tests (fp32/fp16/bf16 against the
#           references, and every op under CUDA bf16 autocast); the fp32 op tests again under
#           compute-sanitizer (memcheck); bench_kernels without torch.compile in fp32 and (L 50)
#           bf16, each row with its % of roofline; bench_train (fused vs unfused CE, L 50 and 200).
# compiled: bench_kernels with torch.compile(reference) as well (each case compiles its own).
#
# One log ($OUT/log.txt) and the JSON results land in $OUT (the tool brings back 8 files at
# most) or ./device-out; commit the JSON under benchmarks/results/ with the device it names. The machine's python3 has torch, pytest, numpy,
# yaml, tqdm and matplotlib but not this package, so it runs from the tree (PYTHONPATH). The
# build cache lives in the ignored .device-cache/, which a warm machine keeps between calls.
# Each step has its own time limit so that one that hangs leaves the others their time.
# DEVICE=cpu BATCH=8 runs the same steps on a CPU to check the script itself.
set -uo pipefail

PHASE=${1:-checks}
OUT=${OUT:-$PWD/device-out}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-256}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 SEQREC_FAST_CACHE_DIR=$PWD/.device-cache
PYTHON=${PYTHON:-python3}
failed=()

LOG=$OUT/log.txt
step() {  # step NAME SECONDS COMMAND...: runs it under a time limit; its output goes to $LOG,
          # its end to stdout too
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s, $(date +%T))" | tee -a "$LOG"
  local started=$SECONDS
  timeout "$limit" "$@" 2>&1 | tr '\r' '\n' | grep -v "it/s\]\|s/it\]" >/tmp/device_step.log
  local rc=${PIPESTATUS[0]}
  cat /tmp/device_step.log >>"$LOG"
  tail -n 25 /tmp/device_step.log  # the tables end each step's output
  echo "=== $name: exit $rc after $((SECONDS - started))s" | tee -a "$LOG"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG" || true

case "$PHASE" in
  checks)
    build=(-m seqrec_fast.cli ops build)
    [ "$DEVICE" = cuda ] && build+=(--cuda)
    step build 240 "$PYTHON" "${build[@]}"
    step cuda_tests 150 "$PYTHON" -m pytest -q -m cuda tests/
    if command -v compute-sanitizer >/dev/null; then
      step sanitizer 150 compute-sanitizer --tool memcheck --error-exitcode 3 \
        "$PYTHON" -m pytest -q -x -m cuda tests/test_ops_native.py -k "fp32 and 50"
    else
      echo "=== sanitizer: skipped, compute-sanitizer is not on PATH"
    fi
    step kernels 150 "$PYTHON" benchmarks/bench_kernels.py --device "$DEVICE" --batch "$BATCH" \
      --min-seconds 0.05 --no-compile --out "$OUT"
    step kernels_bf16 90 "$PYTHON" benchmarks/bench_kernels.py --device "$DEVICE" --batch "$BATCH" \
      --dtype bfloat16 --quick --min-seconds 0.05 --no-compile --out "$OUT"
    for length in 50 200; do
      step "train_len$length" 120 "$PYTHON" benchmarks/bench_train.py --device "$DEVICE" --max-len "$length" \
        --batch-size "$BATCH" --steps 20 --out "$OUT"
    done
    ;;
  compiled)
    step kernels_compiled 540 "$PYTHON" benchmarks/bench_kernels.py --device "$DEVICE" --batch "$BATCH" \
      --min-seconds 0.05 --out "$OUT"
    ;;
  *)
    echo "usage: bash benchmarks/device_checks.sh checks|compiled" >&2
    exit 2
    ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (the log: $LOG)"
  exit 1
fi
echo "all steps passed"
