"""How the CLI shows progress and summaries: rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .client import Progress as RequestProgress

STATUS_STYLE = {"SUCCEEDED": "green", "PARTIAL": "yellow", "FAILED": "red", "TIMED_OUT": "red"}


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
    head.add_row("timed out", str(len(summary["timedOut"])))
    head.add_row("wall time", f"{summary['wallSeconds']:.2f} s")
    compute = summary["computeMs"]
    head.add_row("compute time per case", f"mean {compute['mean']} ms, max {compute['max']} ms")
    if summary_runs is not None:
        head.add_row("Summary runs", str(summary_runs))

    cases = Table(title="Cases" + (f" (first {max_cases} of {len(summary['cases'])})"
                                   if len(summary["cases"]) > max_cases else ""))
    for column in ("caseId", "state", "processing ms", "error"):
        cases.add_column(column)
    for case in summary["cases"][:max_cases]:
        cases.add_row(case["caseId"], case["state"], str(case.get("durationMs", "-")), case.get("error", ""))
    return [head, cases]
