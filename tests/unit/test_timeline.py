"""fanflow/timeline.py and `fanflow report`: a request's timeline built from its records,
its analysis, and the PNG drawn from it (matplotlib imported only when drawing)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fanflow import timeline
from fanflow.cli import main
from lambda_fns import constants as c

T0 = 1_800_000_000.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def history() -> list[dict[str, Any]]:
    """A PreProcess history as get_execution_history returns it (the events that matter, and others)."""
    return [
        {"type": "ExecutionStarted", "timestamp": at(0.0), "executionStartedEventDetails": {"input": "{}"}},
        {"type": "TaskStateEntered", "timestamp": at(0.1), "stateEnteredEventDetails": {"name": "Prepare"}},
        {"type": "TaskStateExited", "timestamp": at(0.4), "stateExitedEventDetails": {"name": "OpenRequest"}},
        {"type": "MapStateEntered", "timestamp": at(0.5), "stateEnteredEventDetails": {"name": "FanOut"}},
        {"type": "TaskStateEntered", "timestamp": at(0.6), "stateEnteredEventDetails": {"name": "EmitBatch"}},
        {"type": "MapStateExited", "timestamp": at(0.9), "stateExitedEventDetails": {"name": "FanOut"}},
        {"type": "WaitStateEntered", "timestamp": at(0.9), "stateEnteredEventDetails": {"name": "AwaitDeadline"}},
    ]


def results() -> list[dict[str, Any]]:
    rows = []
    for i, (start, duration_ms, state) in enumerate([(0.7, 100, "SUCCEEDED"), (0.8, 300, "FAILED"),
                                                     (0.75, 200, "SUCCEEDED"), (0.9, 1000, "SUCCEEDED")]):
        rows.append({c.ATTR_REQUEST_ID: "r", c.ATTR_CASE_ID: str(i), c.ATTR_STATE: state, c.ATTR_OUTCOME: state,
                     c.ATTR_STARTED_AT: T0 + start, c.ATTR_FINISHED_AT: T0 + start + duration_ms / 1000,
                     c.ATTR_DURATION_MS: duration_ms})
    # a case counted from a crash record: it has an outcome but no compute times
    rows.append({c.ATTR_REQUEST_ID: "r", c.ATTR_CASE_ID: "4", c.ATTR_OUTCOME: "FAILED"})
    return rows


def counter_row() -> dict[str, Any]:
    return {c.ATTR_REQUEST_ID: "r", c.ATTR_STATUS: c.STATUS_PARTIAL, c.ATTR_EXPECTED: 5, c.ATTR_COUNTER: 5,
            c.ATTR_CREATED_AT: int(T0), c.ATTR_COMPLETED_AT: T0 + 2.5}


@pytest.fixture
def built() -> dict[str, Any]:
    return timeline.build(counter_row(), results(), history(), {"timedOut": []})


def test_timeline_orders_fan_out_cases_fan_in_and_summary_from_the_request_start(built: dict[str, Any]) -> None:
    # GIVEN a request's history, results rows and counter row WHEN its timeline is built
    kinds = [(e["t"], e["event"], e.get("caseId")) for e in built["events"]]
    # THEN the events are in time order, in seconds since PreProcess started
    assert kinds[:4] == [(0.0, "request.started", None), (0.4, "request.opened", None),
                         (0.5, "fanout.started", None), (0.7, "case.started", "0")]
    assert kinds[-2:] == [(1.9, "fanin.lastCompletion", None), (2.5, "summary.written", None)]
    assert [t for t, _, _ in kinds] == sorted(t for t, _, _ in kinds)
    # AND each computed case starts and finishes once, with its counted state and duration
    finished = {e["caseId"]: e for e in built["events"] if e["event"] == "case.finished"}
    assert set(finished) == {"0", "1", "2", "3"}  # case 4 was never computed
    assert (finished["1"]["state"], finished["1"]["durationMs"], finished["1"]["t"]) == ("FAILED", 300, 1.1)
    assert (built["requestId"], built["status"], built["target"], built["origin"]) == ("r", c.STATUS_PARTIAL, 5, T0)


def test_without_a_history_the_timeline_starts_at_the_counter_row(built: dict[str, Any]) -> None:
    # GIVEN no execution history (not kept, or not readable) WHEN the timeline is built
    bare = timeline.build(counter_row(), results(), [], None)
    # THEN it starts at the row's creation, and the case times do not move
    assert bare["origin"] == T0
    assert [e for e in bare["events"] if e["event"].startswith("case.")] == \
        [e for e in built["events"] if e["event"].startswith("case.")]


def test_analysis_gives_phases_percentiles_throughput_and_the_completion_curve(built: dict[str, Any]) -> None:
    # GIVEN the timeline WHEN it is analysed
    report = timeline.analyse(built)
    # THEN the phases are measured between their marks
    assert report["phases"] == {"prepare": 0.4, "fanOut": 0.4, "compute": 1.2, "fanIn": 0.6, "total": 2.5}
    # AND case durations are summarized (nearest rank)
    assert report["caseDurationMs"] == {"min": 100.0, "p50": 200.0, "p90": 1000.0, "p99": 1000.0, "max": 1000.0,
                                        "mean": 400.0}
    # AND the completion curve counts finished and failed cases in time order
    assert report["completions"] == [[0.8, 1, 0], [0.95, 2, 0], [1.1, 3, 1], [1.9, 4, 1]]
    assert (report["casesFinished"], report["casesFailed"], report["casesPerSecond"]) == (4, 1, 3.33)


def test_load_refuses_what_is_not_a_timeline(tmp_path: Path) -> None:
    # GIVEN files that are not timelines WHEN they are loaded THEN the error says what is wrong
    missing, text, other = tmp_path / "missing.json", tmp_path / "text.json", tmp_path / "other.json"
    text.write_text("not json")
    other.write_text(json.dumps({"requestId": "r"}))
    with pytest.raises(timeline.TimelineError, match="cannot read"):
        timeline.load(missing)
    with pytest.raises(timeline.TimelineError, match="is not JSON"):
        timeline.load(text)
    with pytest.raises(timeline.TimelineError, match="fanflow run --trace"):
        timeline.load(other)


# ---------------------------------------------------------------------------- fanflow report


@pytest.fixture
def trace_file(tmp_path: Path, built: dict[str, Any]) -> Path:
    path = tmp_path / "trace.json"
    timeline.write(built, path)
    return path


def test_report_plot_writes_a_png(trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a timeline file WHEN `fanflow report FILE --plot out.png` runs
    out = tmp_path / "out.png"
    assert main(["report", str(trace_file), "--plot", str(out)]) == 0
    # THEN a PNG image is written, and the phases are printed
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 10_000
    printed = capsys.readouterr()
    assert "fan-out (emit every case)" in printed.out
    assert f"wrote {out}" in printed.err


def test_report_json_prints_the_analysis(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a timeline file WHEN `fanflow report FILE --json` runs THEN the analysis is one JSON object
    assert main(["report", str(trace_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["phases"]["total"] == 2.5


def test_report_plot_without_matplotlib_says_how_to_get_it(trace_file: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN matplotlib cannot be imported
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "out.png"
    # WHEN a plot is asked for THEN the command fails, naming the extra to install, and writes nothing
    assert main(["report", str(trace_file), "--plot", str(out)]) == 2
    assert "pip install 'fanflow[plot]'" in capsys.readouterr().err
    assert not out.exists()


def test_report_of_a_bad_file_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a file that is not a timeline WHEN it is reported THEN exit 2 and the reason on stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert main(["report", str(bad)]) == 2
    assert "is not a fanflow timeline" in capsys.readouterr().err


def test_the_cli_imports_matplotlib_only_to_draw() -> None:
    # GIVEN a fresh interpreter WHEN the CLI module and its commands load THEN matplotlib is not imported
    import subprocess

    code = "import sys, fanflow.cli as m; m.build_parser(); print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
