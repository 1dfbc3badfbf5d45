"""`seqrec-fast quickstart`: the README's main job.

Until the training engine lands this checks the installation end to end: it builds and loads the
native operators, imports the Rust loader and prints the doctor report.
"""

from __future__ import annotations

import json
import time


def run(json_output: bool = False) -> int:
    from .doctor import collect, format_report

    started = time.perf_counter()
    report = collect(build_ops=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    ok = report["rust_loader"]["built"] and report["ops"]["cpu"]["built"]
    if json_output:
        print(json.dumps(report, default=str))
    else:
        print(format_report(report))
        print(f"\nquickstart {'passed' if ok else 'FAILED'} in {report['seconds']} s")
    return 0 if ok else 1
