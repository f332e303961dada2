"""Wall time, CPU time and peak memory of `fanflow run --cases N --json` on the embedded
target, one fresh process per size, so each peak is that run's own. Prints a table. The CPU
column (the process's user + system time, deployment included) moves less than wall time on a
busy machine: compare variants side by side on both."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(cases: int, compute_seconds: float) -> dict[str, object]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = children.ru_maxrss, children.ru_utime + children.ru_stime
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fanflow.cli", "run", "--cases", str(cases), "--json",
         "--compute-seconds", str(compute_seconds), "--timeout", str(max(600, cases // 50))],
        capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = children.ru_maxrss / 1024
    cpu = children.ru_utime + children.ru_stime - cpu_before
    if proc.returncode not in (0, 3):
        raise SystemExit(f"run of {cases} cases failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    return {
        "cases": cases,
        "status": result["status"],
        "processSeconds": round(wall, 2),
        "processCpuSeconds": round(cpu, 2),
        "requestSeconds": result["clientWallSeconds"],
        # ru_maxrss of children is the largest child so far: report it only when it grew.
        "peakRssMb": round(peak_mb, 1) if peak_mb * 1024 > before else None,
        "summaryInvocations": result.get("summaryInvocations"),
        "historyEvents": result.get("preProcessHistoryEvents"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--compute-seconds", type=float, default=0.0)
    args = parser.parse_args()
    rows = []
    for size in sorted(args.sizes):
        rows.append(measure(size, args.compute_seconds))
        print(f"measured {size} cases: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"{'cases':>9} {'status':>10} {'process s':>10} {'CPU s':>7} {'request s':>10} {'peak RSS MB':>12} "
          f"{'Summary runs':>13} {'PreProcess events':>18}")
    for row in rows:
        print(f"{row['cases']:>9} {row['status']:>10} {row['processSeconds']:>10} {row['processCpuSeconds']:>7} "
              f"{row['requestSeconds']:>10} "
              f"{row['peakRssMb'] if row['peakRssMb'] is not None else '-':>12} {row['summaryInvocations']:>13} "
              f"{row['historyEvents']:>18}", flush=True)


if __name__ == "__main__":
    main()
