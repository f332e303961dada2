"""`fanflow run` against a `fanflow up` endpoint, from other processes as a user runs it: it
says where the request runs, a run's --compute-seconds applies to that run only (also beside
another run), settings the endpoint does not run with are refused, Ctrl-C says the request
goes on, and an endpoint that dies mid-run ends the run in one line. The last test kills
the module's endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambda_fns import constants as c
from local.server import EndpointState, read_state
from tests.processes import free_port, run_fanflow

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Endpoint:
    state: EndpointState
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    def fanflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_fanflow(self.env, *args, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "fanflow.cli", *args], env=self.env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)



@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    directory = tmp_path_factory.mktemp("endpoint")
    state_file, log = directory / "endpoint.json", directory / "up.log"
    env = dict(os.environ, FANFLOW_ENDPOINT_FILE=str(state_file))
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "fanflow.cli", "up", "--port", str(free_port())], env=env,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while (state := read_state(state_file)) is None or state.pid != process.pid:
            assert process.poll() is None, f"fanflow up exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"fanflow up did not serve in time: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        yield Endpoint(state, process, env, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def durations(result: dict[str, Any]) -> list[int]:
    return [case["durationMs"] for case in result["cases"]]


def test_a_run_says_it_uses_the_endpoint_and_a_second_start_names_it(endpoint: Endpoint) -> None:
    # GIVEN a seed sample run on the endpoint
    first = endpoint.fanflow("run", str(ROOT / "sample_data_sets" / "dataset_5.json"), "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"using the `fanflow up` endpoint at {endpoint.state.url}" in first.stderr
    # WHEN another sample with the same requestId runs there
    second = endpoint.fanflow("run", str(ROOT / "sample_data_sets" / "dataset_10.json"), "--json")
    # THEN it is refused, naming the endpoint and how to run it anyway
    assert second.returncode == 1 and second.stdout == ""
    assert (f"request '123456' already exists on the embedded endpoint at {endpoint.state.url} (status SUCCEEDED); "
            "it was left unchanged. Use a new requestId (--request-id).") in second.stderr
    # AND with --request-id the same file runs
    third = endpoint.fanflow("run", str(ROOT / "sample_data_sets" / "dataset_10.json"), "--request-id", "sample-10",
                             "--json")
    assert third.returncode == 0 and json.loads(third.stdout)["requestId"] == "sample-10"


def test_compute_seconds_applies_to_its_run_only_also_beside_another(endpoint: Endpoint) -> None:
    # GIVEN a run whose cases each simulate 1.5 s of work
    slow = endpoint.start("run", "--cases", "4", "--request-id", "slow", "--compute-seconds", "1.5", "--json")
    try:
        # WHEN a run without the option runs beside it (asking for the endpoint's own concurrency)
        beside = endpoint.fanflow("run", "--cases", "4", "--request-id", "beside", "--lambda-concurrency", "1000",
                                  "--json")
        out, err = slow.communicate(timeout=180)
    finally:
        if slow.poll() is None:
            slow.kill()
    # THEN each run's cases took its own time: the option stuck neither to the endpoint nor to the other run
    assert slow.returncode == 0, err[-2000:]
    assert beside.returncode == 0, beside.stderr[-2000:]
    assert min(durations(json.loads(out))) >= 1500
    assert max(durations(json.loads(beside.stdout))) < 500
    # AND a plain run afterwards runs with the endpoint's default (0 s), not the last value asked for
    after = endpoint.fanflow("run", "--cases", "3", "--request-id", "after", "--json")
    assert after.returncode == 0 and max(durations(json.loads(after.stdout))) < 500


def test_settings_the_endpoint_does_not_run_with_are_refused(endpoint: Endpoint) -> None:
    for option, value, running in (("--lambda-concurrency", "7", "1000"), ("--kept-histories", "all", "1000")):
        result = endpoint.fanflow("run", "--cases", "2", "--request-id", f"refused{option}", option, value)
        assert result.returncode == 2, result.stderr
        assert (f"{option} {value} cannot apply to the embedded endpoint at {endpoint.state.url}: it was started "
                f"with {option} {running}. Restart it with `fanflow up {option} {value}`") in result.stderr
        assert "Traceback" not in result.stderr
    # AND so are AWS's limits, which it was started without
    result = endpoint.fanflow("run", "--cases", "2", "--aws-limits", "eu-south-1")
    assert result.returncode == 2 and (
        f"--aws-limits eu-south-1 cannot apply to the embedded endpoint at {endpoint.state.url}: it was started "
        "without --aws-limits. Restart it with `fanflow up --aws-limits eu-south-1`") in result.stderr


def test_a_business_key_is_shown_by_status_and_list(endpoint: Endpoint) -> None:
    key = "order 42/2026 #a"
    assert endpoint.fanflow("run", "--cases", "2", "--request-id", key, "--json").returncode == 0
    status = endpoint.fanflow("status", key, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["requestId"] == key
    listed = json.loads(endpoint.fanflow("list", "--json").stdout)
    assert key in [view["requestId"] for view in listed["requests"]]


def test_ctrl_c_on_a_run_says_the_request_goes_on_and_how_to_follow_it(endpoint: Endpoint) -> None:
    # GIVEN a run on the endpoint whose cases take 2 s
    run = endpoint.start("run", "--cases", "20", "--request-id", "interrupted run", "--compute-seconds", "2")
    assert run.stderr is not None
    for line in run.stderr:  # its first progress line: the request has started
        if line.startswith("interrupted run: "):
            break
    # WHEN it is interrupted (Ctrl-C)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    # THEN it exits 130, saying the request goes on there and how to follow it
    assert run.returncode == 130
    assert (f"fanflow: interrupted: request 'interrupted run' goes on at the embedded endpoint at "
            f"{endpoint.state.url}; follow it with `fanflow watch 'interrupted run'`") in err
    assert "Traceback" not in err
    # AND it does: watching it sees it succeed
    watched = endpoint.fanflow("watch", "interrupted run", "--json", timeout=120)
    assert watched.returncode == 0, watched.stderr[-2000:]
    assert json.loads(watched.stdout.splitlines()[-1])["status"] == c.STATUS_SUCCEEDED


def test_an_endpoint_that_dies_mid_run_ends_the_run_in_one_line(endpoint: Endpoint) -> None:
    # GIVEN a run in progress on the endpoint
    run = endpoint.start("run", "--cases", "50", "--request-id", "doomed", "--compute-seconds", "2")
    assert run.stderr is not None
    for line in run.stderr:
        if line.startswith("doomed: "):
            break
    # WHEN the endpoint is killed
    endpoint.process.send_signal(signal.SIGKILL)
    endpoint.process.wait(timeout=30)
    _, err = run.communicate(timeout=120)
    # THEN the run ends (exit 1) with one line: it stopped answering, the request is lost, how to start again
    assert run.returncode == 1
    assert "Traceback" not in err
    [message] = [line for line in err.splitlines() if line.startswith("fanflow: ")]
    assert message.startswith(f"fanflow: the embedded endpoint at {endpoint.state.url} stopped answering (")
    assert "request 'doomed' was lost with it" in message and "`fanflow up`" in message
    # AND the next run says the endpoint has stopped, then runs in-process
    after = endpoint.fanflow("run", "--cases", "2", "--request-id", "after-death", "--json")
    assert after.returncode == 0, after.stderr[-2000:]
    assert f"the `fanflow up` endpoint at {endpoint.state.url} (pid {endpoint.state.pid}" in after.stderr
    assert "has stopped, and the requests it held are gone with it" in after.stderr
    assert "starting the embedded target in this process" in after.stderr
