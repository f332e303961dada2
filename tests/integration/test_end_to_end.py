"""End to end on the embedded target: a full request through the deployed template,
asserting on the counter row and the Summary output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.errors import RequestFailed
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import execution_name, parse_request
from local.runtime import EmbeddedEmulator

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data_sets"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["run", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def assert_complete(result: dict, cases: int) -> None:
    assert result["status"] == c.STATUS_SUCCEEDED
    assert result["target"] == cases
    assert result["succeeded"] == cases and result["failed"] == 0 and result["timedOut"] == []
    assert result["counterRow"][c.ATTR_COUNTER] == result["counterRow"][c.ATTR_EXPECTED] == cases
    assert result["counterRow"][c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert len({case["caseId"] for case in result["cases"]}) == cases
    assert result["summaryInvocations"] == 1


def test_hundred_case_request_completes_exactly_once(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the seed's 100-case sample  WHEN it runs through the CLI on the embedded target
    code, result = run_json(capsys, str(SAMPLES / "dataset_100.json"))
    # THEN every case is counted once and Summary ran once
    assert code == 0
    assert_complete(result, 100)
    assert [case["caseId"] for case in result["cases"]] == [str(i) for i in range(100)]


def test_seed_five_case_file_format(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the seed's own file format: compact JSON, "length" as a string
    raw = (SAMPLES / "dataset_5.json").read_text()
    assert json.loads(raw)["length"] == "5"
    # WHEN it runs  THEN the counter reaches 5 of 5 and the summary names the 5 cases
    code, result = run_json(capsys, str(SAMPLES / "dataset_5.json"))
    assert code == 0
    assert_complete(result, 5)
    assert result["requestId"] == "123456"


def test_bad_request_is_rejected_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a request whose length disagrees with its cases
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"requestId": "r", "requests": [{"caseId": "0"}], "length": "2"}))
    # WHEN it is run  THEN the CLI exits non-zero, naming the problem on stderr, printing nothing
    assert main(["run", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "length says 2 but 'requests' has 1 cases" in captured.err


@pytest.fixture(scope="module")
def emulator():
    with EmbeddedEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: EmbeddedEmulator) -> FanflowClient:
    return FanflowClient(emulator.client, emulator.outputs)


def test_a_started_emulator_has_frozen_its_deployed_heap(emulator: EmbeddedEmulator) -> None:
    # GIVEN a started emulator  THEN what its deployment left alive is out of the collector's walks
    import gc

    assert gc.get_freeze_count() > 0


def wait_execution(emulator: EmbeddedEmulator, arn: str, timeout: float = 30) -> dict:
    sfn = emulator.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running after {timeout} s")


def test_direct_start_with_malformed_request_writes_no_state(emulator: EmbeddedEmulator, client: FanflowClient) -> None:
    # GIVEN a malformed request started directly on PreProcess, bypassing the CLI's check
    sfn = emulator.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN], name="direct-bad",
                              input=json.dumps({"requestId": "direct-bad", "requests": []}))["executionArn"]
    # WHEN it runs  THEN PreProcess fails as InvalidRequest, and no counter row or manifest exists
    execution = wait_execution(emulator, arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidRequest"
    assert "'requests' is empty" in execution["cause"]
    assert client.counter_row("direct-bad") is None
    listed = emulator.client("s3").list_objects_v2(Bucket=emulator.outputs[c.OUTPUT_ARTIFACTS_BUCKET],
                                                   Prefix="manifests/direct-bad/")
    assert listed.get("KeyCount", 0) == 0


def test_resubmitted_request_id_never_resets_the_request(emulator: EmbeddedEmulator, client: FanflowClient) -> None:
    # GIVEN a finished 10-case request
    request = parse_request(sample_request(10, "resubmit"))
    client.start(request)
    row = client.wait("resubmit", timeout=60)
    assert row[c.ATTR_COUNTER] == 10
    # WHEN the same requestId is submitted again, through the client and directly
    with pytest.raises(RequestFailed, match="already exists"):
        client.start(parse_request(sample_request(3, "resubmit")))
    sfn = emulator.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN], name="resubmit-2",
                              input=json.dumps(sample_request(3, "resubmit")))["executionArn"]
    # THEN the direct start fails at OpenRequest and the counter row is unchanged
    execution = wait_execution(emulator, arn)
    assert execution["error"] == "RequestAlreadyExists"
    after = client.counter_row("resubmit")
    assert after is not None
    kept = (c.ATTR_COUNTER, c.ATTR_EXPECTED, c.ATTR_STATUS, c.ATTR_SUMMARY_KEY)
    assert {k: after[k] for k in kept} == {k: row[k] for k in kept}
    assert after[c.ATTR_COUNTER] == 10 and after[c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert emulator.summary_invocations("resubmit") == 1


def test_a_request_id_whose_first_start_ended_before_opening_it_starts_again(
        emulator: EmbeddedEmulator, client: FanflowClient) -> None:
    # GIVEN a PreProcess execution named after a requestId that ended before it opened the request
    # (here rejected by Prepare; on AWS also a start whose OpenRequest failed for good)
    sfn = emulator.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN],
                              name=execution_name("again"),
                              input=json.dumps({"requestId": "again", "requests": []}))["executionArn"]
    assert wait_execution(emulator, arn)["status"] == "FAILED"
    # WHEN the client starts a valid request with that requestId (Step Functions keeps the name 90 days)
    request = parse_request(sample_request(5, "again"))
    started = client.start(request)
    # THEN it runs under the next free execution name, with the minified input it validated
    assert started.endswith(":" + execution_name("again", restart=1))
    assert sfn.describe_execution(executionArn=started)["input"] == request.to_input_json()
    assert client.wait("again", timeout=60)[c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    # AND once it is open, the requestId is refused as existing, as before
    with pytest.raises(RequestFailed, match="already exists"):
        client.start(request)
