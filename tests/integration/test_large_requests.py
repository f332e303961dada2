"""Requests too large to travel inline, on the embedded target: stored in S3 and read by
reference, fanned out in chunks by a Distributed Map, their results rows spread over shards,
and a summary that keeps its per-case lines beside it above SUMMARY_INLINE_CASES cases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns import keys
from lambda_fns.request_model import RequestError, parse_request
from local.runtime import EmbeddedEmulator

# Twice SUMMARY_INLINE_CASES (the summary holds no per-case list) and, with its payloads, over
# the inline limit (the request travels by reference); 20 chunks, 40 results shards.
LARGE = 20_000


@pytest.fixture
def emulator() -> Iterator[EmbeddedEmulator]:
    """Per test: the CLI tests here run their own in-process target, and only one can be installed."""
    with EmbeddedEmulator() as emu:
        yield emu


def test_a_request_over_the_inline_limit_runs_by_reference_in_chunks_and_shards(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a request of LARGE cases with a small payload each: over what travels inline
    request = {"requestId": "large", "requests": [{"caseId": str(i), "input": f"x{i:07d}"} for i in range(LARGE)]}
    path = tmp_path / "large.json"
    path.write_text(json.dumps(request))
    assert not parse_request(path.read_text()).fits_inline()
    # WHEN it runs through the CLI on the embedded target
    code = main(["run", str(path), "--json", "--timeout", "900"])
    result = json.loads(capsys.readouterr().out)
    # THEN every case is counted once, and Summary ran once
    assert code == 0 and result["status"] == c.STATUS_SUCCEEDED
    row = result["counterRow"]
    assert row[c.ATTR_COUNTER] == row[c.ATTR_EXPECTED] == result["succeeded"] == LARGE
    assert result["summaryInvocations"] == 1
    # AND the fan-out ran in chunks of FANOUT_CHUNK_CASES over the shards the rule gives
    assert row[c.ATTR_CHUNKS] == 20 == -(-LARGE // c.FANOUT_CHUNK_CASES)
    assert row[c.ATTR_SHARDS] == keys.shard_count(LARGE) == 40
    # AND above SUMMARY_INLINE_CASES the output lists the cases that did not succeed (none) and
    # names the local file holding every case's line, one per case
    assert result["cases"] == [] and result["casesListed"] == "notSucceeded"
    lines = [json.loads(line) for line in Path(result["resultsFile"]).read_text().splitlines()]
    assert len(lines) == LARGE
    assert {line["caseId"] for line in lines} == {str(i) for i in range(LARGE)}
    assert {line["state"] for line in lines} == {c.CASE_SUCCEEDED}
    # AND PreProcess's history stays a few dozen events (its chunks ran in child executions)
    assert result["preProcessHistoryEvents"] < 100


def test_a_request_stored_in_s3_starts_by_reference_through_start_execution(emulator: EmbeddedEmulator) -> None:
    # GIVEN a request stored in the artifacts bucket
    client = FanflowClient(emulator.client, emulator.outputs)
    request = parse_request(sample_request(30, "by-ref"))
    uri = client.store_request(request)
    # WHEN PreProcess is started directly with the documented by-reference input
    sfn = emulator.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN],
                              name="by-ref-direct", input=json.dumps({"requestRef": uri}))["executionArn"]
    row = client.wait("by-ref", execution_arn=arn, timeout=120)
    # THEN it runs the stored request: 30 cases counted, SUCCEEDED, and its summary lists them
    summary = client.summary(row)
    assert (row[c.ATTR_STATUS], row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED]) == (c.STATUS_SUCCEEDED, 30, 30)
    assert [case["caseId"] for case in summary["cases"]] == [str(i) for i in range(30)]
    # AND the results rows are read back shard by shard (30 cases in one chunk: 4 shards)
    assert row[c.ATTR_SHARDS] == 4 and len(client.results("by-ref")) == 30


@pytest.mark.parametrize(("stored", "start_input", "message"), [
    (None, {"requestRef": "s3://{bucket}/requests/nothing-here.json"},
     "PreProcess refused it: cannot read the request at s3://{bucket}/requests/nothing-here.json: NoSuchKey"),
    ({"requestId": "mine", "requests": [{"caseId": "0"}]},
     {"requestId": "theirs", "requestRef": "s3://{bucket}/requests/mine.json"},
     "PreProcess refused it: the input names requestId 'theirs' but the request at "
     "s3://{bucket}/requests/mine.json is 'mine'"),
])
def test_a_reference_prepare_cannot_use_is_refused_with_its_reason_and_nothing_written(
        emulator: EmbeddedEmulator, stored: dict[str, Any] | None, start_input: dict[str, str], message: str) -> None:
    client = FanflowClient(emulator.client, emulator.outputs)
    bucket = emulator.outputs[c.OUTPUT_ARTIFACTS_BUCKET]
    if stored is not None:
        emulator.client("s3").put_object(Bucket=bucket, Key="requests/mine.json", Body=json.dumps(stored).encode())
    start = {key: value.format(bucket=bucket) for key, value in start_input.items()}
    request_id = start.get("requestId", "nothing")
    arn = emulator.client("stepfunctions").start_execution(
        stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN], name=f"refused-{request_id}",
        input=json.dumps(start))["executionArn"]
    # WHEN the client waits for it  THEN it is refused as an invalid request, with Prepare's reason
    with pytest.raises(RequestError) as info:
        client.wait(request_id, execution_arn=arn, timeout=60)
    assert str(info.value) == message.format(bucket=bucket)
    # AND no counter row was written
    assert client.counter_row(request_id) is None


def test_run_s3_uri_on_the_in_process_target_says_its_buckets_start_empty(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the in-process embedded target, whose buckets are new  WHEN a stored request is run
    code = main(["run", "s3://some-bucket/requests/r.json"])
    # THEN it is refused as an invalid request (exit 2) with a hint, and nothing runs
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot read s3://some-bucket/requests/r.json: NoSuchBucket" in err
    assert "the in-process embedded target starts with empty buckets" in err


@pytest.mark.parametrize("extra", [["--request-id", "x"], ["--deadline", "60"]])
def test_run_s3_uri_refuses_options_that_would_change_the_stored_request(
        capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    code = main(["run", "s3://bucket-name/r.json", *extra])
    assert code == 2
    assert "runs as stored: --request-id and --deadline cannot change it" in capsys.readouterr().err
