"""The queue target's workers as a user starts them: `fanflow run` on the embedded target
starts its own, and `fanflow worker` computes from a process of its own (here against a
`fanflow up` endpoint) and finishes the cases in hand on SIGTERM. Its own module: `fanflow
run` deploys an in-process emulator, which cannot coexist with another in the same process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from fanflow.cli import main
from fanflow.client import FanflowClient
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.deploy import stack_outputs
from local.server import read_state
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def request(request_id: str, types: list[str | None]) -> dict[str, Any]:
    return {"requestId": request_id, "requests": [
        {"caseId": str(i), **({c.ATTR_COMPUTE_TYPE: t} if t else {})} for i, t in enumerate(types)]}


def test_fanflow_run_on_the_embedded_target_starts_its_own_workers(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a request file with two cases per compute type
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(request("cli-mixed", [t for t in (None, *c.COMPUTE_TYPES) for _ in range(2)])))
    # WHEN `fanflow run` runs it on the embedded target
    assert main(["run", str(path), "--json"]) == 0
    # THEN every case succeeded, the queue's included
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == c.STATUS_SUCCEEDED and out["succeeded"] == 10 and out["summaryInvocations"] == 1





def test_fanflow_worker_computes_from_another_process_and_finishes_its_case_on_sigterm(tmp_path: Path) -> None:
    # GIVEN a `fanflow up` endpoint, and `fanflow worker` polling it from another process
    port, state_file = free_port(), tmp_path / "endpoint.json"
    env = dict(os.environ, FANFLOW_ENDPOINT_FILE=str(state_file))
    up_log, worker_log = (tmp_path / "up.log").open("w"), (tmp_path / "worker.log").open("w")
    up = subprocess.Popen([sys.executable, "-m", "fanflow.cli", "up", "--port", str(port)], env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, stdout=up_log, stderr=subprocess.STDOUT)
    worker = None
    try:
        deadline = time.monotonic() + 240
        while (state := read_state(state_file)) is None or state.pid != up.pid:
            assert up.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()[-2000:]
            time.sleep(0.2)
        worker = subprocess.Popen([sys.executable, "-m", "fanflow.cli", "worker", "--target", "embedded",
                                   "--threads", "2", "--compute-seconds", "3", "--wait-seconds", "1"],
                                  env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=worker_log,
                                  stderr=subprocess.STDOUT)
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                         region_name="us-east-1")
        outputs = stack_outputs(session.client("cloudformation", endpoint_url=state.url))
        client = FanflowClient(lambda service: session.client(service, endpoint_url=state.url), outputs)
        sqs = session.client("sqs", endpoint_url=state.url)
        # WHEN a 2-case queue request starts, and the worker gets SIGTERM while it computes both (3 s each)
        client.start(parse_request(request("worker-process", [c.COMPUTE_TYPE_QUEUE] * 2)))
        while int(sqs.get_queue_attributes(QueueUrl=outputs[c.OUTPUT_WORK_QUEUE_URL],
                                           AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
                  ["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) < 2:
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        # THEN it finishes the cases in hand, reports them and exits cleanly
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-2000:]
        row = client.wait("worker-process", timeout=30)
        assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED]) == (2, 2)
        assert {r[c.ATTR_COMPUTED_BY] for r in client.results("worker-process")} == {c.COMPUTE_TYPE_QUEUE}
        log = (tmp_path / "worker.log").read_text()
        assert "SIGTERM: finishing the cases in hand" in log and "2 case(s) completed" in log
    finally:
        for process in (worker, up):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        up_log.close()
        worker_log.close()
