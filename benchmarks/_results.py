"""What every benchmark script shares: the machine's description, atomic JSON results and running
one documented --json command."""

from __future__ import annotations

import json
import os
import statistics
import platform
import shlex
import subprocess
import sys
from pathlib import Path

try:
    from seqrec_fast.atomic_io import atomic_write_json
except ImportError:  # RecBole's own virtualenv (recbole_baseline.py) has no seqrec_fast: the checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from seqrec_fast.atomic_io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
# The command line beside this interpreter (a virtualenv's, even when it is not activated), else
# the one on PATH.
_BESIDE = Path(sys.executable).with_name("seqrec-fast")
CLI = str(_BESIDE) if _BESIDE.exists() else "seqrec-fast"


def run_json(command: list[str], log: Path) -> dict:
    """Runs a --json command, its stderr (progress, epochs) appended to ``log``; returns its result."""
    with log.open("a") as err:
        err.write(f"$ {shlex.join(command)}\n")
        err.flush()
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"failed ({completed.returncode}): {shlex.join(command)}; see {log}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(**extra) -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), **extra}


def write_result(path: Path, payload: dict) -> None:
    """Writes ``payload`` as indented JSON; a reader never sees half a file."""
    atomic_write_json(path, payload)


def mean_sd(rows: list[dict], skip: tuple[str, ...] = ("seed",)) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and count over ``rows`` of every numeric field any row has (a
    field some rows lack, such as a retrained-only metric, over the rows that have it)."""
    keys = dict.fromkeys(k for r in rows for k, v in r.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in skip)
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "n": len(values)}
    return out


def t_interval(mean: float, sd: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Student's t interval of a mean over ``n`` runs (seeds) with standard deviation ``sd``."""
    from scipy.stats import t as student_t  # scipy comes with POT, a dependency of the package

    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * sd / n ** 0.5
    return mean - half, mean + half


class Runs:
    """A study's runs under one folder, each one documented command. A stopped bench comes back to
    them: a run with a result.json is read back, an interrupted one continues with --resume and the
    runtime flags alone, since a resumed run keeps its own configuration. Every command is logged to
    ROOT/bench.log."""

    def __init__(self, root: Path, configuration: list[str], threads: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = self.root / "bench.log"
        self.runtime = ["--threads", str(threads), "--no-progress", "--json"]
        self.configuration = configuration

    def finish(self, command: list[str], out: Path, seed: int, options: list[str],
               started: str = "config.yaml") -> None:
        """Runs ``seqrec-fast COMMAND --out OUT`` with the configuration and ``options`` at ``seed``,
        or resumes it where ``started`` (a file or folder the run writes) shows it began."""
        if (out / "result.json").is_file():
            return
        if (out / started).exists():
            run_json([CLI, *command, "--out", str(out), "--resume", *self.runtime], self.log)
        else:
            run_json([CLI, *command, "--out", str(out), "--seed", str(seed), *self.configuration, *options,
                      *self.runtime], self.log)

    def retrain(self, out: Path) -> None:
        if not (out / "retrain" / "result.json").is_file():
            run_json([CLI, "retrain", str(out), "--json"], self.log)
