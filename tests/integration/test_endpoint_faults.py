"""A `fanflow up --detach` endpoint that injects faults, used from other processes as a user
would: it says what it injects, a plain `fanflow run` on it ends PARTIAL with exactly the failures
it injected, `fanflow results` streams what the summary counts, and `fanflow down` stops it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_fns import constants as c
from local.server import EndpointState, health, injected_faults, read_state
from tests.processes import free_port, run_fanflow

ROOT = Path(__file__).resolve().parents[2]
CASES = 200
REQUEST_ID = "faulty 200"


@dataclass
class Endpoint:
    state: EndpointState
    env: dict[str, str]
    state_file: Path

    def fanflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_fanflow(self.env, *args, timeout=timeout)



@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    state_file = tmp_path_factory.mktemp("faulty-endpoint") / "endpoint.json"
    env = dict(os.environ, FANFLOW_ENDPOINT_FILE=str(state_file))
    port = free_port()
    # GIVEN `fanflow up --failure-rate 0.2 --detach`
    up = subprocess.run([sys.executable, "-m", "fanflow.cli", "up", "--failure-rate", "0.2", "--port", str(port),
                         "--detach"], env=env, capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    state = read_state(state_file)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert state is not None and f"serving at {state.url}" in up.stdout
        assert "fanflow: injecting faults: --failure-rate 0.2, --seed 0 (first attempts only)" in up.stderr
        yield Endpoint(state, env, state_file)
    finally:
        if state is not None and health(state.url) is not None:  # a test failed before `down` stopped it
            subprocess.run([sys.executable, "-m", "fanflow.cli", "down"], env=env, timeout=60, check=False,
                           capture_output=True)


@pytest.fixture(scope="module")
def run_output(endpoint: Endpoint) -> dict[str, Any]:
    """A plain `fanflow run --cases 200 --json` on the endpoint."""
    run = endpoint.fanflow("run", "--cases", str(CASES), "--request-id", REQUEST_ID, "--json")
    assert run.returncode == 3, run.stderr[-2000:]  # finished, not every case succeeded
    assert f"using the `fanflow up` endpoint at {endpoint.state.url}" in run.stderr
    return dict(json.loads(run.stdout))


def failed_ids(cases: list[dict[str, Any]]) -> set[str]:
    return {case["caseId"] for case in cases if case["state"] == c.CASE_FAILED}


def test_the_endpoint_describes_its_faults(endpoint: Endpoint) -> None:
    answer = health(endpoint.state.url)
    assert answer is not None
    assert answer["faults"] == {"duplicateRate": 0.0, "failureRate": 0.2, "dropRate": 0.0, "conflictRate": 0.0,
                                "seed": 0, "everyAttempt": False}


def test_a_run_on_it_ends_partial_with_exactly_the_injected_failures(endpoint: Endpoint,
                                                                     run_output: dict[str, Any]) -> None:
    # THEN the request ended PARTIAL: every case counted, some failed, by injection
    assert run_output["status"] == c.STATUS_PARTIAL
    assert run_output["succeeded"] + run_output["failed"] == CASES
    assert 0 < run_output["failed"] < CASES
    failed = failed_ids(run_output["cases"])
    assert len(failed) == run_output["failed"]
    assert all("injected failure (--failure-rate)" in case["error"] for case in run_output["cases"]
               if case["state"] == c.CASE_FAILED)
    # AND the endpoint reports the same cases as the ones it made fail
    report = injected_faults(endpoint.state.url, REQUEST_ID)
    assert report is not None and set(report["failedCases"]) == failed


def test_results_streams_what_the_summary_counts(endpoint: Endpoint, run_output: dict[str, Any],
                                                 tmp_path: Path) -> None:
    # WHEN every case's result is asked for THEN there is a JSON line per case, as the summary has them
    every = endpoint.fanflow("results", REQUEST_ID)
    assert every.returncode == 0, every.stderr[-2000:]
    lines = [json.loads(line) for line in every.stdout.splitlines()]
    assert len(lines) == CASES
    assert Counter(line["state"] for line in lines) == {c.CASE_SUCCEEDED: run_output["succeeded"],
                                                         c.CASE_FAILED: run_output["failed"]}
    assert failed_ids(lines) == failed_ids(run_output["cases"])
    # AND the failures alone, as CSV, are the summary's failures with their errors
    failures = endpoint.fanflow("results", REQUEST_ID, "--state", "failed", "--format", "csv")
    assert failures.returncode == 0, failures.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(failures.stdout)))
    assert {row["caseId"] for row in rows} == failed_ids(run_output["cases"])
    assert all(row["state"] == c.CASE_FAILED and "injected failure" in row["error"] for row in rows)
    # AND the successes go to a file, with their count on stderr
    path = tmp_path / "succeeded.jsonl"
    written = endpoint.fanflow("results", REQUEST_ID, "--state", "SUCCEEDED", "-o", str(path))
    assert written.returncode == 0 and written.stdout == ""
    assert len(path.read_text().splitlines()) == run_output["succeeded"]
    assert f"wrote {run_output['succeeded']} cases (SUCCEEDED) of request '{REQUEST_ID}' to {path}" in written.stderr


def test_results_of_an_unknown_request_exits_1(endpoint: Endpoint) -> None:
    result = endpoint.fanflow("results", "no such request")
    assert (result.returncode, result.stdout) == (1, "")
    assert f"no request 'no such request' on the embedded endpoint at {endpoint.state.url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_redrive_from_its_own_command_brings_the_partial_request_to_success(
        endpoint: Endpoint, run_output: dict[str, Any]) -> None:
    failed = failed_ids(run_output["cases"])
    # WHEN the PARTIAL request is redriven from a separate command (the faults hit first attempts only)
    redrive = endpoint.fanflow("redrive", REQUEST_ID, "--json")
    # THEN only its failed cases ran again, and it ends SUCCEEDED with every case counted once
    assert redrive.returncode == 0, redrive.stderr[-2000:]
    assert f"request {REQUEST_ID!r}: attempt 2 started, re-emitting its failed and never-completed cases" in (
        redrive.stderr)
    view = json.loads(redrive.stdout.strip().splitlines()[-1])
    assert (view["status"], view["attempt"], view["counter"], view["target"], view["redriven"]) == (
        c.STATUS_SUCCEEDED, 2, CASES, CASES, len(failed))
    assert (view["summary"]["succeeded"], view["summary"]["failed"]) == (CASES, 0)
    # AND the results say which cases ended on attempt 2: exactly those that had failed
    lines = [json.loads(line) for line in endpoint.fanflow("results", REQUEST_ID).stdout.splitlines()]
    assert {line["caseId"] for line in lines if line["attempt"] == 2} == failed and len(lines) == CASES
    # AND list shows the attempt
    listed = json.loads(endpoint.fanflow("list", "--json").stdout)["requests"]
    assert [(r["requestId"], r["attempt"], r["status"]) for r in listed] == [(REQUEST_ID, 2, c.STATUS_SUCCEEDED)]


def test_cancel_and_redrive_refuse_what_they_cannot_do_and_say_why(endpoint: Endpoint) -> None:
    cancel = endpoint.fanflow("cancel", REQUEST_ID)
    assert cancel.returncode == 2 and f"request {REQUEST_ID!r} has finished (SUCCEEDED)" in cancel.stderr
    redrive = endpoint.fanflow("redrive", REQUEST_ID)
    assert redrive.returncode == 2 and "succeeded: there is nothing to redrive" in redrive.stderr
    for command in ("cancel", "redrive"):
        unknown = endpoint.fanflow(command, "no such request")
        assert unknown.returncode == 1 and "no request 'no such request'" in unknown.stderr
        assert "Traceback" not in unknown.stderr + cancel.stderr + redrive.stderr


def test_down_stops_it(endpoint: Endpoint, run_output: dict[str, Any]) -> None:
    down = endpoint.fanflow("down")
    assert down.returncode == 0
    # (down waits until the process has exited)
    assert f"stopped the endpoint at {endpoint.state.url} (pid {endpoint.state.pid})" in down.stderr
    assert health(endpoint.state.url) is None and read_state(endpoint.state_file) is None
