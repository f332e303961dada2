"""How the CLI shows progress, summaries, request status and timelines: rich on a
terminal, plain lines otherwise; timeline plots with matplotlib, when installed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .client import Progress as RequestProgress
from .errors import UsageError

STATUS_STYLE = {"SUCCEEDED": "green", "PARTIAL": "yellow", "FAILED": "red", "TIMED_OUT": "red", "CANCELLED": "magenta"}
# What a summary's computeMs measures: each case's wall time from the start to the end of its
# work, in its compute target. On the embedded target that includes the time a case that has
# finished sleeping waits for the one CPU-bound interpreter (its GIL), not only the work.
CASE_TIME_LABEL = "case time in compute (wall)"


def output_console(file: TextIO | None = None) -> Console:
    """Where tables go: a terminal at its width; anything else (a file, a pipe) at the
    tables' own width, never cut or wrapped at rich's default of 80 columns."""
    console = Console(file=file)
    return console if console.is_terminal else Console(file=file, width=100_000)


class ProgressReporter:
    """A live bar on a terminal; otherwise a plain line at each tenth of the way."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._console = Console(file=stream)
        self._stream = stream
        self._bar: Progress | None = None
        self._task: Any = None
        self._last_tenth = -1

    def __enter__(self) -> ProgressReporter:
        if self._console.is_terminal:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self._console)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: RequestProgress) -> None:
        detail = f"ok {progress.succeeded}  failed {progress.failed}  {progress.status.lower()}"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(progress.request_id, total=progress.target, detail=detail)
            self._bar.update(self._task, completed=progress.completed, detail=detail)
            return
        tenth = progress.completed * 10 // max(progress.target, 1)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            print(f"{progress.request_id}: {progress.completed}/{progress.target} cases ({detail})",
                  file=self._stream, flush=True)


def summary_tables(summary: dict[str, Any], *, summary_runs: int | None, max_cases: int) -> list[Table]:
    status = summary["status"]
    head = Table(title=f"Request {summary['requestId']}", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value")
    head.add_row("status", f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]")
    head.add_row("cases (target)", str(summary["target"]))
    head.add_row("succeeded", str(summary["succeeded"]))
    head.add_row("failed", str(summary["failed"]))
    head.add_row("timed out", str(summary.get("timedOutCount", len(summary["timedOut"]))))
    if summary.get("fanOutError"):
        not_emitted = summary.get("notEmittedCount", len(summary.get("notEmitted", [])))
        head.add_row("not emitted", f"{not_emitted}: {escape(summary['fanOutError'])}")
    head.add_row("wall time", f"{summary['wallSeconds']:.2f} s")
    compute = summary["computeMs"]
    percentiles = f", p50 {compute['p50']} ms, p99 {compute['p99']} ms" if "p50" in compute else ""
    head.add_row(CASE_TIME_LABEL, f"mean {compute['mean']} ms{percentiles}, max {compute['max']} ms")
    if summary_runs is not None:
        head.add_row("Summary runs", str(summary_runs))
    if max_cases == 0:
        return [head]

    # Up to SUMMARY_INLINE_CASES the summary lists every case; above, the run lists those that did not succeed.
    label = "Cases that did not succeed" if summary.get("casesListed") == "notSucceeded" else "Cases"
    cases = Table(title=label + (f" (first {max_cases} of {len(summary['cases'])})"
                                 if len(summary["cases"]) > max_cases else ""))
    for column in ("caseId", "state", "time in compute ms", "error"):
        cases.add_column(column)
    for case in summary["cases"][:max_cases]:
        # caseIds and errors are data, never markup: "[/data]" would crash the table
        cases.add_row(escape(case["caseId"]), case["state"], str(case.get("durationMs", "-")),
                      escape(case.get("error", "")))
    return [head, cases]


# -- operating: status, list, watch, report ---------------------------------------------------


def duration(seconds: float | None) -> str:
    """A duration for people: '850 ms', '12.3 s', '4 min 05 s', '2 h 07 min'."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{int(seconds // 86_400)} d {int(seconds % 86_400 // 3600):02d} h"


def limits_line(report: dict[str, Any]) -> str:
    """What AWS's limits did to an embedded run (local/aws_limits/enforce.AwsLimits.report)."""
    waits = "; ".join(f"{name} {entry['times']:,} times, {entry['seconds']:,.1f} s in all"
                      for name, entry in report["waits"].items()) or "nothing waited"
    scale = f", {report['timeScale']:g} times slower than AWS" if report.get("timeScale", 1) != 1 else ""
    return (f"under {report['region']}'s limits{scale} (Lambda concurrency {report['lambdaConcurrency']:,}, peak "
            f"{report['peakConcurrency']:,}, {report['coldStarts']:,} cold starts, {report['transactionConflicts']:,} "
            f"transaction conflicts): {waits}")


def timestamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def styled_status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'cyan')}]{status}[/]"


def status_tables(view: dict[str, Any]) -> list[Table]:
    """`fanflow status`: the request's state and counts, then its summary when there is one."""
    head = Table(title=f"Request {view['requestId']}", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value")
    head.add_row("state", styled_status(view["status"]))
    if view.get("attempt", 1) > 1:
        head.add_row("attempt", f"{view['attempt']} (redrove {view.get('redriven') or 0} cases)")
    head.add_row("counted / target", f"{view['counter']} / {view['target']}")
    head.add_row("succeeded", str(view["succeeded"]))
    head.add_row("failed", str(view["failed"]))
    head.add_row("created", f"{timestamp(view['createdAt'])} ({duration(view['ageSeconds'])} ago)")
    if view["final"]:
        head.add_row("completed", f"{timestamp(view['completedAt'])} (took {duration(view['durationSeconds'])})")
    else:
        left = view["secondsToDeadline"]
        when = "passed" if left is not None and left < 0 else f"in {duration(left)}"
        head.add_row("deadline", f"{timestamp(view['deadline'])} ({when})")
    summary = view.get("summary")
    if summary is None:
        return [head]
    body = Table(title="Summary", show_header=False)
    body.add_column("field", style="bold")
    body.add_column("value")
    body.add_row("status", styled_status(summary["status"]))
    timed_out = summary.get("timedOutCount", len(summary["timedOut"]))
    body.add_row("succeeded / failed / timed out", f"{summary['succeeded']} / {summary['failed']} / {timed_out}")
    if "cancelledCount" in summary:
        body.add_row("cancelled (had not completed)", str(summary["cancelledCount"]))
    body.add_row("wall time", duration(summary["wallSeconds"]))
    compute = summary["computeMs"]
    body.add_row(CASE_TIME_LABEL, f"mean {compute['mean']} ms, max {compute['max']} ms")
    if view.get("summaryKey"):
        body.add_row("stored at", str(view["summaryKey"]))
    tables = [head, body]
    if summary["failedCases"]:
        failures = Table(title=f"Failed cases (first {len(summary['failedCases'])} of {summary['failed']})")
        failures.add_column("caseId")
        failures.add_column("error")
        for case in summary["failedCases"]:
            failures.add_row(escape(case["caseId"]), escape(case.get("error", "")))
        tables.append(failures)
    if summary["timedOut"]:
        shown = summary["timedOut"][:20]
        body.add_row("never completed",
                     escape(", ".join(shown)) + (" ..." if len(summary["timedOut"]) > len(shown) else ""))
    return tables


def requests_table(views: list[dict[str, Any]], *, total: int) -> Table:
    """`fanflow list`: one line per request, newest first."""
    shown = f"{len(views)} of {total}" if len(views) < total else str(total)
    table = Table(title=f"Requests ({shown}, newest first)")
    table.add_column("request", overflow="fold")  # ids are copied into `fanflow status`: never cut
    for column in ("state", "attempt", "done", "ok", "failed", "age", "took"):
        table.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    for view in views:
        table.add_row(view["requestId"], styled_status(view["status"]), str(view.get("attempt") or 1),
                      f"{view['counter']}/{view['target']}",
                      str(view["succeeded"]), str(view["failed"]), duration(view["ageSeconds"]),
                      duration(view["durationSeconds"]))
    return table


def dead_letters_table(rows: list[dict[str, Any]], *, replayed: bool) -> Table:
    """`fanflow dead-letters`: one line per message, with what became of it when replayed."""
    table = Table(title=f"Dead letters ({len(rows)})")
    for column in ("queue", "request", "case", "source", "receives", "sent", *(["replayed"] if replayed else [])):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(value)) for value in (
            row["queue"], row["requestId"] or "-", row["caseId"] or "-", row["source"] or "(not an event)",
            row["receives"], timestamp(row["sentAt"]), *([row["replayed"]] if replayed else []))))
    return table


class WatchReporter:
    """`fanflow watch`: a live bar with rate and ETA on a terminal; otherwise a plain line
    at each tenth of the way and when the state changes, so a log is never flooded."""

    def __init__(self, stream: TextIO = sys.stdout, *, force_terminal: bool | None = None) -> None:
        self._console = Console(file=stream, force_terminal=force_terminal)
        self._stream = stream
        self._bar: Progress | None = None
        self._task: Any = None
        self._last: tuple[int, str] | None = None

    def __enter__(self) -> WatchReporter:
        if self._console.is_terminal:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(), console=self._console)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, view: dict[str, Any]) -> None:
        """`view` is ops.watch_view's dict."""
        rate = "-" if view["ratePerSecond"] is None else f"{view['ratePerSecond']:.1f} cases/s"
        eta = duration(view["etaSeconds"])
        detail = f"ok {view['succeeded']}  failed {view['failed']}  {view['status'].lower()}"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(view["requestId"], total=view["target"], detail=detail,
                                                rate=rate, eta=eta)
            self._bar.update(self._task, completed=view["completed"], detail=detail, rate=rate, eta=eta)
            return
        mark = (view["completed"] * 10 // max(view["target"], 1), view["status"])
        if mark != self._last:
            self._last = mark
            print(f"{view['requestId']}: {view['completed']}/{view['target']} cases ({detail}), {rate}, ETA {eta}",
                  file=self._stream, flush=True)


def report_tables(report: dict[str, Any]) -> list[Table]:
    """`fanflow report`: where the request's time went, and how long its cases took."""
    head = Table(title=f"Request {report['requestId']} ({report['status']})", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value")
    head.add_row("cases finished / target", f"{report['casesFinished']} / {report['target']}")
    head.add_row("failed / never completed", f"{report['casesFailed']} / {report['timedOut']}")
    labels = {"prepare": "prepare (validate, open the row)", "fanOut": "fan-out (emit every case)",
              "compute": "compute (first case start to last case end)",
              "fanIn": "fan-in (last completion to summary written)", "total": "total"}
    for key, label in labels.items():
        head.add_row(label, duration(report["phases"][key]))
    if report["casesPerSecond"] is not None:
        head.add_row("throughput", f"{report['casesPerSecond']} cases/s")
    tables = [head]
    if report["caseDurationMs"]:
        cases = Table(title="Case duration (ms)")
        for column in ("min", "p50", "p90", "p99", "max", "mean"):
            cases.add_column(column, justify="right")
        cases.add_row(*(f"{report['caseDurationMs'][k]:g}" for k in ("min", "p50", "p90", "p99", "max", "mean")))
        tables.append(cases)
    return tables


def require_matplotlib() -> None:
    """UsageError when matplotlib, which every --plot needs, is not installed: checked before
    the work whose result it would draw."""
    try:
        import matplotlib  # noqa: F401  (optional: only the --plot options need it)
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'fanflow[plot]'") from None


def plot_timeline(report: dict[str, Any], path: Path) -> None:
    """Two panels: cases completed over time (failed ones too) with the fan-out and summary
    marked; and the distribution of per-case durations. Written as PNG."""
    require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    curve, histogram = figure.subplots(1, 2, width_ratios=[3, 2])
    points = report["completions"]
    times = [0.0] + [t for t, _, _ in points]
    curve.step(times, [0] + [n for _, n, _ in points], where="post", label="cases computed")
    if report["casesFailed"]:
        curve.step(times, [0] + [f for _, _, f in points], where="post", color="tab:red", label="of which failed")
    curve.axhline(report["target"], color="grey", linestyle=":", linewidth=1, label=f"target ({report['target']})")
    marks = report["marks"]
    if "fanout.started" in marks and "fanout.finished" in marks:
        curve.axvspan(marks["fanout.started"], marks["fanout.finished"], color="tab:orange", alpha=0.15,
                      label="fan-out")
    if "summary.written" in marks:
        curve.axvline(marks["summary.written"], color="tab:green", linestyle="--", label="summary written")
    if "deadline.reached" in marks:
        curve.axvline(marks["deadline.reached"], color="tab:red", linestyle="--", label="deadline")
    curve.set_xlabel("seconds since the request started")
    curve.set_ylabel("cases")
    curve.set_ylim(bottom=0)
    curve.set_xlim(left=0)
    curve.set_title(f"Request {report['requestId']}: {report['status']}")
    curve.legend(loc="lower right", fontsize="small")
    curve.grid(alpha=0.3)
    durations = report["durationsMs"]
    if durations:
        histogram.hist(durations, bins=min(40, max(5, len(durations) // 5)), color="tab:blue", alpha=0.8)
        stats = report["caseDurationMs"]
        for key, style in (("p50", "-"), ("p99", "--")):
            histogram.axvline(stats[key], color="black", linestyle=style, linewidth=1,
                              label=f"{key} {stats[key]:g} ms")
        histogram.legend(fontsize="small")
    else:
        histogram.text(0.5, 0.5, "no case finished", ha="center", va="center", transform=histogram.transAxes)
    histogram.set_xlabel("case duration (ms)")
    histogram.set_ylabel("cases")
    histogram.set_title("Per-case compute duration")
    figure.savefig(path, dpi=110)
