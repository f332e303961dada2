"""The embedded target under a Region's published AWS limits (`--aws-limits`,
local/aws_limits/enforce.py): a request still counts exactly, the limits bind where AWS's
would (reserved concurrency, cold starts, a transaction that overlaps another on an item is
cancelled with TransactionConflict), and the CLI says what it ran under, or refuses."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.runtime import EmbeddedEmulator


def test_a_request_under_the_limits_counts_exactly_within_the_reserved_concurrency() -> None:
    # GIVEN the emulator under us-east-1's limits (Compute reserves 200 executions, as deployed)
    with EmbeddedEmulator(compute_seconds=2.0, aws_limits="us-east-1") as emulator:
        limits = emulator.limits
        assert limits is not None and limits.pool is not None
        compute = emulator.outputs[c.OUTPUT_COMPUTE_FUNCTION]
        assert limits.pool.reserved[compute] == 200
        client = FanflowClient(emulator.client, emulator.outputs)
        # WHEN a 300-case request of 2 s cases runs (its fan-out takes about a second)
        started = time.monotonic()
        client.start(parse_request(sample_request(300, "limited")))
        row = client.wait("limited", timeout=300)
        took = time.monotonic() - started
        report = limits.report()
        environments = limits.pool.environments(compute)
    # THEN it succeeded with every case counted once, and Summary ran once
    assert (row[c.ATTR_STATUS], row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED]) == (c.STATUS_SUCCEEDED, 300, 300)
    assert emulator.summary_invocations("limited") == 1
    # AND Compute scaled to its 200 reserved executions and no further: the other 100 cases
    # waited in its asynchronous queue for a second wave
    assert environments == 200
    assert report["waits"]["Lambda concurrency"]["times"] >= 100 and report["throttledAsyncReads"] >= 1
    assert took >= 2 * 2.0


def test_a_transaction_overlapping_another_on_an_item_is_cancelled_with_transaction_conflict() -> None:
    # GIVEN the emulator under the limits, ten times slower than AWS: a transaction holds its
    # items for about a quarter of a second
    with EmbeddedEmulator(aws_limits="us-east-1", time_scale=10) as emulator:
        ddb = emulator.client("dynamodb")
        table = emulator.outputs[c.OUTPUT_COUNTER_TABLE]

        def add(request_id: str) -> dict[str, Any]:
            return {"Update": {"TableName": table, "Key": {c.ATTR_REQUEST_ID: {"S": request_id}},
                               "UpdateExpression": "ADD #n :one", "ExpressionAttributeNames": {"#n": "n"},
                               "ExpressionAttributeValues": {":one": {"N": "1"}}}}

        first = threading.Thread(target=lambda: ddb.transact_write_items(TransactItems=[add("x"), add("y")]))
        first.start()
        time.sleep(0.05)
        # WHEN another transaction on one of its items starts while it runs
        with pytest.raises(ClientError) as raised:
            ddb.transact_write_items(TransactItems=[add("z"), add("y")])
        first.join()
        # THEN it is cancelled, the second item's reason TransactionConflict, as DynamoDB says
        # (docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html)
        error = raised.value.response
        assert error["Error"]["Code"] == "TransactionCanceledException"
        assert [reason["Code"] for reason in error["CancellationReasons"]] == ["None", "TransactionConflict"]
        # AND nothing of it was written, while the first transaction's writes stand
        items = {key: ddb.get_item(TableName=table, Key={c.ATTR_REQUEST_ID: {"S": key}}).get("Item")
                 for key in ("x", "y", "z")}
        assert items["z"] is None and items["x"]["n"] == items["y"]["n"] == {"N": "1"}
        # AND once it has ended, the same transaction goes through
        ddb.transact_write_items(TransactItems=[add("z"), add("y")])
        assert emulator.limits is not None and emulator.limits.report()["transactionConflicts"] == 1


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_fanflow_run_says_what_the_limits_did_or_refuses_what_cannot_run_under_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a request runs under eu-south-1's limits
    code, out, err = run_cli(capsys, "run", "--cases", "20", "--compute-seconds", "0", "--aws-limits", "eu-south-1",
                             "--json")
    result = json.loads(out)
    # THEN it succeeds and its output says under which limits, and what they did
    assert code == 0 and result["succeeded"] == 20
    assert "under eu-south-1's published AWS limits, in real time" in err
    limits = result["awsLimits"]
    assert (limits["region"], limits["timeScale"], limits["lambdaConcurrency"]) == ("eu-south-1", 1.0, 1000)
    assert limits["coldStarts"] > 0 and limits["peakConcurrency"] >= 1
    # AND an account too small for the stack's reserved concurrency is refused, before any request
    code, _, err = run_cli(capsys, "run", "--cases", "3", "--aws-limits", "us-east-1", "--lambda-concurrency", "500")
    assert code == 2 and "the account's concurrency must be at least 760, got 500 (--lambda-concurrency)" in err
    # AND a time scale without limits, or a Region that is not one, is refused at once
    code, _, err = run_cli(capsys, "run", "--cases", "3", "--time-scale", "4")
    assert code == 2 and "give --aws-limits REGION too" in err
    code, _, err = run_cli(capsys, "run", "--cases", "3", "--aws-limits", "mars")
    assert code == 2 and "expected an AWS Region name such as us-east-1, got 'mars'" in err
