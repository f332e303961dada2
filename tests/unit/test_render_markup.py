"""fanflow/render.py prints caseIds and errors as data: text that looks like Rich markup
("[/data]", "[bold]") is shown as written, never interpreted (an unmatched closing tag used to
crash the tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from fanflow.render import status_tables, summary_tables
from lambda_fns import constants as c

CASE_ID = "[/data]"
ERROR = "KeyError: '[bold]weights[/bold]' in [/data]"


def printed(tables: list[Any]) -> str:
    console = Console(record=True, width=200, color_system=None)
    for table in tables:
        console.print(table)
    return console.export_text()


def summary() -> dict[str, Any]:
    return {"requestId": "r", "status": c.STATUS_FAILED, "target": 2, "succeeded": 0, "failed": 1,
            "timedOut": ["[b]late"], "notEmitted": [CASE_ID], "fanOutError": "fan-out: [/x] refused",
            "wallSeconds": 1.0, "computeMs": {"mean": 1, "max": 1, "total": 1},
            "cases": [{"caseId": CASE_ID, "state": c.CASE_FAILED, "error": ERROR},
                      {"caseId": "[b]late", "state": c.STATUS_TIMED_OUT}]}


def test_run_tables_show_markup_like_case_ids_and_errors_as_written() -> None:
    text = printed(summary_tables(summary(), summary_runs=1, max_cases=10))
    assert CASE_ID in text and "[bold]weights[/bold]" in text and "[/x] refused" in text


def test_status_tables_show_markup_like_case_ids_and_errors_as_written() -> None:
    view = {"requestId": "r", "status": c.STATUS_FAILED, "counter": 1, "target": 2, "succeeded": 0, "failed": 1,
            "createdAt": 0, "ageSeconds": 1, "final": True, "completedAt": 1, "durationSeconds": 1,
            "summaryKey": "summaries/r.json",
            "summary": {**summary(), "failedCases": [{"caseId": CASE_ID, "error": ERROR}]}}
    text = printed(status_tables(view))
    assert CASE_ID in text and "[bold]weights[/bold]" in text and "[b]late" in text
