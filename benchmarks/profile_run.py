"""Where the embedded engine's CPU goes: runs one request of N cases (0 s compute) under
cProfile on every thread, counting each thread's own CPU time, and prints the CPU by
package (self time) and the heaviest functions (cumulative). Profiler overhead inflates
the seconds several times over; compare shares, not seconds, with a real run.

    python benchmarks/profile_run.py 1000 --stats profile.out   # then: python -m pstats profile.out
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import re
import threading
import time
from typing import Any

from fanflow.client import FanflowClient
from fanflow.samples import sample_request
from lambda_fns.request_model import parse_request
from local.runtime import EmbeddedEmulator

# Time a thread spends blocked is not CPU; these two are where idle threads wait.
IDLE = ("<method 'get' of '_queue.SimpleQueue' objects>", "<method 'acquire' of '_thread.lock' objects>")


def package_of(filename: str) -> str:
    path = filename.split("site-packages/")[-1]
    if path.startswith("~"):
        return "builtins"
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3")[-1].split("/", 2)[1].removesuffix(".py")
    if "lambda_fns/" in path:
        return "lambda_fns"
    parts = path.split("/")
    if parts[0] == "moto" and len(parts) > 2:
        return "/".join(parts[:2])
    for ours in ("local/", "fanflow/"):
        if ours in path:
            return ours + path.split(ours, 1)[1]
    return parts[0]


def profile(cases: int) -> pstats.Stats:
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profile(*_: Any) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profiler)
        profiler.enable()

    with EmbeddedEmulator(compute_seconds=0.0) as emulator:
        client = FanflowClient(emulator.client, emulator.outputs)
        request = parse_request(sample_request(cases, f"profile-{cases}"))
        threading.setprofile(start_thread_profile)
        main = cProfile.Profile(time.thread_time)
        main.enable()
        try:
            client.start(request)
            row = client.wait(request.request_id, timeout=1800)
        finally:
            main.disable()
            threading.setprofile(None)
        print(f"{cases} cases: {row.get('status')}, counter {row.get('counter')} / {row.get('target')}")
    stats = pstats.Stats(main)
    for profiler in profiles:
        profiler.disable()
        stats.add(profiler)
    return stats


def report(stats: pstats.Stats, top: int) -> None:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_package: collections.Counter[str] = collections.Counter()
    for (filename, _, name), (_, _, own, _, _) in raw.items():
        if name not in IDLE:
            by_package[package_of(filename)] += own
    total = sum(by_package.values())
    print(f"\nCPU by package (self time, profiler seconds; total {total:.1f}):")
    for package, seconds in by_package.most_common(top):
        print(f"  {seconds / total:6.1%} {seconds:8.2f}  {package}")
    print(f"\nHeaviest functions (cumulative, share of the total above; {top} shown):")
    rows = sorted(((cumulative, calls, filename, line, name)
                   for (filename, line, name), (_, calls, _, cumulative, _) in raw.items()
                   if name not in IDLE and not re.search(r"threading\.py|concurrent/futures", filename)),
                  reverse=True)
    for cumulative, calls, filename, line, name in rows[:top]:
        where = filename.split("site-packages/")[-1]
        print(f"  {cumulative / total:6.1%} {calls:8d} calls  {where}:{line}({name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="?", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="rows per table (default: 25)")
    parser.add_argument("--stats", metavar="FILE", help="also save the merged profile for pstats")
    args = parser.parse_args()
    stats = profile(args.cases)
    if args.stats:
        stats.dump_stats(args.stats)
    report(stats, args.top)


if __name__ == "__main__":
    main()
