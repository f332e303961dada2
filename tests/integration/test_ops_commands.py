"""`fanflow status`, `watch`, `list` and `run --trace` on the embedded target, through their
JSON output: a running request, a finished one, a failed one, and an unknown requestId.
The commands need state that outlives one process, so most tests run them against an
emulator this module starts, through the same functions the CLI calls."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow import timeline
from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.commands import ops as ops_commands
from fanflow.errors import RequestNotFound
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import execution_name, parse_request
from local.faults import FaultPlan
from local.runtime import EmbeddedEmulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def start(client: FanflowClient, request_id: str, cases: int) -> str:
    return client.start(parse_request(sample_request(cases, request_id)))


def wait_for_row(client: FanflowClient, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (row := client.counter_row(request_id)) is None:
        assert time.monotonic() < deadline, f"no counter row for {request_id} after {timeout} s"
        time.sleep(0.05)
    return row


def status_json(client: FanflowClient, request_id: str) -> dict[str, Any]:
    out = io.StringIO()
    assert ops_commands.show_status(client, request_id, as_json=True, out=out) == 0
    return dict(json.loads(out.getvalue()))


# ---------------------------------------------------------------------------- own emulators
# These start emulators of their own (one emulator runs at a time in a process): they come
# before the module's shared emulator is created.


def test_status_and_watch_of_a_failed_request() -> None:
    # GIVEN an emulator where every computation fails, and a 5-case request run to its end
    with EmbeddedEmulator(faults=FaultPlan(failure_rate=1.0)) as emu:
        client = FanflowClient(emu.client, emu.outputs)
        start(client, "ops-failed", 5)
        # WHEN it is watched THEN the watch ends with exit status 3 (finished, not every case succeeded)
        out = io.StringIO()
        assert ops_commands.watch_request(client, "ops-failed", as_json=True, interval=0.1, timeout=60, out=out) == 3
        # AND its status says FAILED, every case failed, and lists them with their error
        view = status_json(client, "ops-failed")
    assert (view["status"], view["failed"], view["succeeded"], view["counter"]) == (c.STATUS_FAILED, 5, 0, 5)
    assert json.loads(out.getvalue().splitlines()[-1])["status"] == c.STATUS_FAILED
    failed = view["summary"]["failedCases"]
    assert sorted(case["caseId"] for case in failed) == [str(i) for i in range(5)]
    assert all("injected failure" in case["error"] for case in failed)


def test_run_trace_writes_a_timeline_that_report_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN `fanflow run --trace FILE` for a 20-case request
    trace, png = tmp_path / "trace.json", tmp_path / "timeline.png"
    assert main(["run", "--cases", "20", "--request-id", "ops-trace", "--json", "--trace", str(trace)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == c.STATUS_SUCCEEDED  # stdout stays one JSON object
    assert f"to {trace}" in captured.err
    # WHEN the timeline is read back THEN it is the request's, with its 20 cases
    data = timeline.load(trace)
    assert (data["requestId"], data["status"], data["target"]) == ("ops-trace", c.STATUS_SUCCEEDED, 20)
    assert sum(1 for e in data["events"] if e["event"] == "case.finished") == 20
    # AND `fanflow report FILE --plot` draws it as a PNG
    assert main(["report", str(trace), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_cli_status_of_an_unknown_request_fails_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no `fanflow up` endpoint (so the embedded target holds no request)
    # WHEN `fanflow status` asks for a request
    began = time.monotonic()
    code = main(["status", "ops-missing", "--json"])
    captured = capsys.readouterr()
    # THEN it exits non-zero at once, prints nothing on stdout, and says why on stderr, with what to do
    assert code == 1
    assert captured.out == ""
    assert "no request 'ops-missing'" in captured.err
    assert "fanflow up" in captured.err
    assert time.monotonic() - began < 3, "no empty emulator is started to say so"


def test_cli_list_on_an_empty_target(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no `fanflow up` endpoint WHEN `fanflow list --json` runs
    assert main(["list", "--json"]) == 0
    captured = capsys.readouterr()
    # THEN it lists nothing, as JSON, and explains on stderr why it is empty
    assert json.loads(captured.out) == {"total": 0, "requests": []}
    assert "fanflow up" in captured.err


# ---------------------------------------------------------------------------- the module's emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: EmbeddedEmulator) -> FanflowClient:
    return FanflowClient(emulator.client, emulator.outputs)


def test_status_of_a_running_request_then_watch_until_it_ends(emulator: EmbeddedEmulator,
                                                             client: FanflowClient) -> None:
    # GIVEN a 20-case request whose cases each take 2 s
    emulator.set_compute_seconds(2.0)
    try:
        start(client, "ops-running", 20)
        wait_for_row(client, "ops-running")
        # WHEN its status is asked while the cases run
        running = status_json(client, "ops-running")
        # THEN it is RUNNING, not all counted, before its deadline, with no summary yet
        assert running["status"] == c.STATUS_RUNNING and running["final"] is False
        assert running["target"] == 20 and running["counter"] < 20
        assert 0 < running["secondsToDeadline"] <= c.DEFAULT_DEADLINE_SECONDS + 1  # rounded up to the second
        assert running["ageSeconds"] >= 0 and running["summary"] is None
        # AND WHEN it is watched with --json
        out = io.StringIO()
        code = ops_commands.watch_request(client, "ops-running", as_json=True, interval=0.1, timeout=120, out=out)
    finally:
        emulator.set_compute_seconds(c.COMPUTE_SECONDS_EMBEDDED)
    # THEN one line per change reports progress that never goes back, then the final status
    *progress, final = [json.loads(line) for line in out.getvalue().splitlines()]
    assert progress, "watch printed no progress"
    completed = [line["completed"] for line in progress]
    assert completed == sorted(completed) and completed[-1] == 20
    assert all(line["target"] == 20 and "ratePerSecond" in line and "etaSeconds" in line for line in progress)
    assert final["status"] == c.STATUS_SUCCEEDED and final["summary"]["succeeded"] == 20
    assert code == 0


def test_status_of_a_finished_request_carries_its_summary(client: FanflowClient) -> None:
    # GIVEN a 10-case request that has finished
    start(client, "ops-finished", 10)
    client.wait("ops-finished", timeout=60)
    # WHEN its status is asked
    view = status_json(client, "ops-finished")
    # THEN it is SUCCEEDED with every case counted, how long it took, and its summary
    assert (view["status"], view["counter"], view["target"], view["succeeded"], view["failed"]) == (
        c.STATUS_SUCCEEDED, 10, 10, 10, 0)
    assert view["final"] is True and view["secondsToDeadline"] is None
    assert view["durationSeconds"] is not None and view["durationSeconds"] >= 0
    assert view["summaryKey"] == "summaries/ops-finished.json"
    assert view["summary"]["status"] == c.STATUS_SUCCEEDED and view["summary"]["failedCases"] == []


def test_list_shows_requests_newest_first_with_their_state(client: FanflowClient) -> None:
    # GIVEN two finished requests, created moments apart (createdAt has milliseconds)
    start(client, "ops-list-older", 2)
    client.wait("ops-list-older", timeout=60)
    time.sleep(0.05)
    start(client, "ops-list-newer", 2)
    client.wait("ops-list-newer", timeout=60)
    # WHEN the requests are listed with --json
    out = io.StringIO()
    ops_commands.list_requests(client, limit=100, as_json=True, out=out)
    listed = json.loads(out.getvalue())
    # THEN both are there with their state, the newer first, and every request is counted
    ids = [view["requestId"] for view in listed["requests"]]
    assert ids.index("ops-list-newer") < ids.index("ops-list-older")
    created = [view["createdAt"] for view in listed["requests"]]
    assert created == sorted(created, reverse=True)
    assert {v["requestId"]: v["status"] for v in listed["requests"]}["ops-list-newer"] == c.STATUS_SUCCEEDED
    assert listed["total"] == len(listed["requests"])
    # AND a limit keeps only the newest
    out = io.StringIO()
    ops_commands.list_requests(client, limit=1, as_json=True, out=out)
    limited = json.loads(out.getvalue())
    assert [v["requestId"] for v in limited["requests"]] == [ids[0]]
    assert limited["total"] == listed["total"]


def test_unknown_request_is_not_found(client: FanflowClient) -> None:
    # GIVEN a requestId nothing has used WHEN its status is asked or it is watched THEN it is not found at once
    out = io.StringIO()
    with pytest.raises(RequestNotFound, match="no request 'ops-nobody'"):
        ops_commands.show_status(client, "ops-nobody", as_json=True, out=out)
    began = time.monotonic()
    with pytest.raises(RequestNotFound):
        ops_commands.watch_request(client, "ops-nobody", as_json=True, timeout=60, out=out)
    assert time.monotonic() - began < 10, "an unknown request must not wait for the timeout"
    assert out.getvalue() == ""


def test_status_of_a_rejected_request_names_the_reason(emulator: EmbeddedEmulator, client: FanflowClient) -> None:
    # GIVEN a malformed request started directly on PreProcess (no counter row is ever written)
    sfn = emulator.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN],
                              name=execution_name("ops-rejected"),
                              input=json.dumps({"requestId": "ops-rejected", "requests": []}))["executionArn"]
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # WHEN its status is asked THEN it is REJECTED, with PreProcess's error
    view = status_json(client, "ops-rejected")
    assert (view["status"], view["preprocess"], view["error"]) == ("REJECTED", "FAILED", "InvalidRequest")


def test_timeline_of_a_finished_request_is_built_from_its_records(emulator: EmbeddedEmulator,
                                                                  client: FanflowClient) -> None:
    # GIVEN a finished 30-case request, whose PreProcess has left its fan-out (on the embedded target
    # the cases can be counted and summarized before PreProcess's thread records the Map's exit)
    arn = start(client, "ops-timeline", 30)
    client.wait("ops-timeline", timeout=60)
    deadline = time.monotonic() + 30
    while not any(e["type"] == "MapStateExited" for e in client.execution_history(arn)):
        assert time.monotonic() < deadline, "PreProcess never left its fan-out"
        time.sleep(0.05)
    # WHEN its timeline is collected through boto3
    trace = timeline.collect(client, "ops-timeline", execution_arn=arn)
    kinds = [event["event"] for event in trace["events"]]
    # THEN it holds the fan-out from PreProcess's history, each case's start and end, fan-in and summary
    assert kinds[0] == "request.started"
    for kind in ("request.opened", "fanout.started", "fanout.finished", "fanin.lastCompletion", "summary.written"):
        assert kinds.count(kind) == 1, kind
    assert kinds.count("case.started") == kinds.count("case.finished") == 30
    position = {kind: kinds.index(kind) for kind in set(kinds)}
    assert position["request.opened"] < position["fanout.started"] < position["case.started"]
    assert position["fanin.lastCompletion"] < position["summary.written"]
    assert [e["t"] for e in trace["events"]] == sorted(e["t"] for e in trace["events"])
