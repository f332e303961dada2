"""Each Lambda handler against moto. Handlers read their configuration and create their
boto3 clients at import, so every test imports its handler fresh inside mock_aws."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambda_fns import constants as c
from lambda_fns.request_model import RequestError
from tests.tables import create_counter_table, create_results_table, results_key

REGION = "us-east-1"
BUCKET = "fanflow-artifacts"
BUS = "fanflow-bus"
COUNTER_TABLE = "fanflow-counter"
RESULTS_TABLE = "fanflow-results"
RETENTION = 2 * 86_400
SEED = {"requestId": "123456", "requests": [{"caseId": str(i)} for i in range(5)], "length": "5"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, no endpoint override, and moto for the test's duration."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "FANFLOW_LOG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


HANDLERS = ("prepare", "emit", "compute", "summary")


@pytest.fixture(autouse=True)
def forget_handlers() -> Iterator[None]:
    """Leave no handler module (bound to moto's clients) or log handler behind for later tests."""
    loggers = {name: logging.getLogger(f"fanflow.{name}") for name in HANDLERS}
    before = {name: list(logger.handlers) for name, logger in loggers.items()}
    yield
    for name, logger in loggers.items():
        sys.modules.pop(f"lambda_fns.{name}", None)
        for handler in logger.handlers[:]:
            if handler not in before[name]:
                logger.removeHandler(handler)
                handler.close()


def fresh(module: str) -> ModuleType:
    """Import a handler module anew, so it reads the current environment and moto's clients."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def context() -> SimpleNamespace:
    return SimpleNamespace(aws_request_id="ctx-0001", function_name="test")


def make_bucket() -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def make_counter_table() -> Any:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_counter_table(ddb, COUNTER_TABLE)
    return ddb


def make_results_table() -> Any:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_results_table(ddb, RESULTS_TABLE)
    return ddb


class BusTap:
    """An event bus with a rule forwarding one source's events to an SQS queue."""

    def __init__(self, source: str) -> None:
        self.events = boto3.client("events", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events.create_event_bus(Name=BUS)
        self.queue_url = self.sqs.create_queue(QueueName=f"tap-{abs(hash(source))}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": [source]}))
        self.events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered so far, as the EventBridge envelope."""
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


# --- prepare ---------------------------------------------------------------------------------


@pytest.fixture
def prepare(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any]]:
    monkeypatch.setenv(c.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(c.ENV_RETENTION_SECONDS, str(RETENTION))
    monkeypatch.setenv(c.ENV_COMPUTE_CONCURRENCY, "2")
    monkeypatch.setenv(c.ENV_CHUNK_CASES, "2")
    monkeypatch.setenv(c.ENV_FANOUT_CONCURRENCY, "10")
    s3 = make_bucket()
    yield fresh("lambda_fns.prepare"), s3


def chunks_of(s3: Any, state: dict[str, Any]) -> list[list[str]]:
    """The caseIds of each chunk Prepare stored, in chunk order."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=state["chunkPrefix"]).get("Contents", [])
    return [[case["caseId"] for case in json.loads(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())]
            for obj in sorted(listed, key=lambda o: o["Key"])]


def test_prepare_stores_the_cases_in_chunks_plans_the_deadline_and_writes_the_manifest(
        prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN the seed's 5-case request and chunks of 2 cases
    module, s3 = prepare
    before = time.time()
    # WHEN Prepare runs
    state = module.handler(json.loads(json.dumps(SEED)), context())
    after = time.time()
    # THEN the target is the string "5"; the state carries chunk numbers, never cases ...
    assert state["requestId"] == "123456"
    assert state["target"] == "5"
    assert state["chunks"] == [0, 1, 2] and state["chunkCount"] == "3"
    assert "batches" not in state and "cases" not in state
    # ... and the cases are in S3 in 3 chunks of 2, 2, 1, in order, under chunks/<requestId>/<token>/
    assert state["chunkPrefix"] == "chunks/123456/ctx-0001/"
    assert chunks_of(s3, state) == [["0", "1"], ["2", "3"], ["4"]]
    # AND the results shards follow the rule: min(cases, 4 x min(chunks, fan-out concurrency))
    assert state["shards"] == "5"
    # AND createdAt has milliseconds (as completedAt has); the deadline is the whole second at or
    # after createdAt + the default deadline for 5 cases at a compute concurrency of 2 (3 waves of
    # three compute timeouts, plus slack); numbers are strings for DynamoDB
    created = float(state["createdAt"])
    assert before - 0.001 <= created <= after
    assert state["createdAt"] == f"{created:.3f}"
    default = 3 * c.COMPUTE_ATTEMPTS * c.COMPUTE_TIMEOUT_SECONDS + c.DEADLINE_SLACK_SECONDS
    assert int(state["deadline"]) == math.ceil(created + default)
    assert state["deadlineIso"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(state["deadline"])))
    assert int(state["expiresAt"]) == int(state["deadline"]) + RETENTION
    assert all(isinstance(state[k], str) for k in ("target", "createdAt", "deadline", "expiresAt", "shards"))
    # AND the manifest lists the caseIds in order, under manifests/<requestId>/
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="manifests/123456/").get("Contents", [])
    assert [obj["Key"] for obj in listed] == [state["manifestKey"]]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=state["manifestKey"])["Body"].read())
    assert manifest == {"requestId": "123456", "caseIds": ["0", "1", "2", "3", "4"]}


def test_prepare_reads_a_request_by_reference(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN the seed's request stored in S3 (as `fanflow run` stores a large one)
    module, s3 = prepare
    s3.put_object(Bucket=BUCKET, Key="requests/123456/r1.json", Body=json.dumps(SEED).encode())
    # WHEN Prepare gets the documented by-reference input, with and without the requestId
    for event in ({"requestRef": f"s3://{BUCKET}/requests/123456/r1.json"},
                  {"requestId": "123456", "requestRef": f"s3://{BUCKET}/requests/123456/r1.json"}):
        state = module.handler(event, context())
        # THEN it plans the stored request as it would the same request inline
        assert (state["requestId"], state["target"], state["chunks"]) == ("123456", "5", [0, 1, 2])
        assert chunks_of(s3, state) == [["0", "1"], ["2", "3"], ["4"]]


@pytest.mark.parametrize(("event", "message"), [
    ({"requestRef": f"s3://{BUCKET}/requests/none.json"},
     f"cannot read the request at s3://{BUCKET}/requests/none.json: NoSuchKey"),
    ({"requestRef": "s3://no-such-bucket-here/x.json"},
     "cannot read the request at s3://no-such-bucket-here/x.json: NoSuchBucket"),
    ({"requestId": "other", "requestRef": f"s3://{BUCKET}/stored.json"},
     f"the input names requestId 'other' but the request at s3://{BUCKET}/stored.json is '123456'"),
    ({"requestRef": f"s3://{BUCKET}/stored.json", "requests": []},
     "a request by reference (requestRef) holds only requestId besides it; this input also has 'requests'"),
    ({"requestRef": "https://example.com/x.json"}, "requestRef must be an S3 URI, s3://bucket/key"),
    ({"requestRef": f"s3://{BUCKET}/bad.json"}, "length says 6"),
])
def test_prepare_refuses_a_reference_it_cannot_use_and_writes_nothing(
        prepare: tuple[ModuleType, Any], event: dict[str, Any], message: str) -> None:
    # GIVEN a stored valid request and a stored invalid one
    module, s3 = prepare
    s3.put_object(Bucket=BUCKET, Key="stored.json", Body=json.dumps(SEED).encode())
    s3.put_object(Bucket=BUCKET, Key="bad.json", Body=json.dumps({**SEED, "length": "6"}).encode())
    # WHEN Prepare gets a reference it cannot use  THEN RequestError naming why
    with pytest.raises(RequestError) as info:
        module.handler(event, context())
    assert message in str(info.value)
    # AND no chunk or manifest was written
    assert {obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET)["Contents"]} == {"stored.json", "bad.json"}


def test_prepare_uses_the_request_deadline(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN a request with its own deadlineSeconds  WHEN Prepare runs
    module, _ = prepare
    state = module.handler({**SEED, "deadlineSeconds": 45}, context())
    # THEN the deadline is createdAt + 45, rounded up to the second
    deadline = math.ceil(float(state["createdAt"]) + 45)
    assert int(state["deadline"]) == deadline
    # AND the close is planned: a claim at the deadline, then every CLAIM_RETRY_SECONDS; at each,
    # a claim older than STALE_CLAIM_SECONDS is stale
    slots = state["claimSlots"]
    assert len(slots) == c.CLAIM_ATTEMPTS
    assert slots[0] == {"at": str(deadline), "atIso": state["deadlineIso"],
                        "staleBefore": str(deadline - c.STALE_CLAIM_SECONDS)}
    assert [int(slot["at"]) - deadline for slot in slots] == [i * c.CLAIM_RETRY_SECONDS for i in range(len(slots))]
    # AND the slots outlast a stale claim: one taken just before the deadline goes stale at a later slot
    assert int(slots[-1]["staleBefore"]) > deadline


def test_prepare_refuses_a_deadline_beyond_the_retention(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN a stack whose records live RETENTION seconds after a deadline
    module, s3 = prepare
    bound = RETENTION - c.CLOSE_MARGIN_SECONDS
    # WHEN a request asks for a deadline its records would not outlive  THEN it is refused, naming the bound
    with pytest.raises(RequestError, match=f"deadlineSeconds must be a number of seconds between 1 and {bound}"):
        module.handler({**SEED, "deadlineSeconds": bound + 1}, context())
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    # AND the bound itself is accepted
    assert int(module.handler({**SEED, "deadlineSeconds": bound}, context())["deadline"]) > 0


def test_prepare_rejects_a_bad_request_and_writes_nothing(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN a request whose length disagrees with its cases
    module, s3 = prepare
    bad = {**SEED, "length": "6"}
    # WHEN Prepare runs  THEN RequestError, and the bucket stays empty
    with pytest.raises(RequestError, match="length says 6"):
        module.handler(bad, context())
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_prepare_without_configuration_fails_at_import(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no FANOUT_CHUNK_CASES in the environment  WHEN the module is imported  THEN it names it
    from lambda_fns.support import ConfigurationError

    for name in (c.ENV_ARTIFACTS_BUCKET, c.ENV_RETENTION_SECONDS, c.ENV_COMPUTE_CONCURRENCY, c.ENV_FANOUT_CONCURRENCY):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv(c.ENV_CHUNK_CASES, raising=False)
    with pytest.raises(ConfigurationError, match=c.ENV_CHUNK_CASES):
        fresh("lambda_fns.prepare")


# --- emit ------------------------------------------------------------------------------------


@pytest.fixture
def emit(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, BusTap]]:
    for name, value in {c.ENV_EVENTBUS_NAME: BUS, c.ENV_RESULTS_TABLE: RESULTS_TABLE,
                        c.ENV_COUNTER_TABLE: COUNTER_TABLE, c.ENV_ARTIFACTS_BUCKET: BUCKET,
                        c.ENV_FANOUT_ATTEMPTS: "3", c.ENV_FANOUT_BACKOFF_BASE_SECONDS: "2",
                        c.ENV_FANOUT_BACKOFF_MAX_SECONDS: "60"}.items():
        monkeypatch.setenv(name, value)
    ddb = make_counter_table()
    make_results_table()
    make_bucket()
    tap = BusTap(c.PREPROCESS_SOURCE)
    yield fresh("lambda_fns.emit"), ddb, tap


def test_emit_stops_a_chunk_when_its_request_is_no_longer_running(emit: tuple[ModuleType, Any, BusTap],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a chunk of 350 cases whose request is cancelled after Emit has made 9 PutEvents calls
    module, ddb, tap = emit
    cases = [{"caseId": f"case-{i}"} for i in range(350)]
    event = chunk_event("req-c", cases)
    checks = 0
    real = module.still_running

    def cancelled_at_the_eleventh_check(request_id: str, attempt: int) -> bool:
        nonlocal checks
        checks += 1
        if checks == 11:
            ddb.update_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": "req-c"}},
                            UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": c.ATTR_STATUS},
                            ExpressionAttributeValues={":s": {"S": c.STATUS_SUMMARIZING}})
        return bool(real(request_id, attempt))

    monkeypatch.setattr(module, "still_running", cancelled_at_the_eleventh_check)
    # WHEN Emit runs
    result = module.handler(event, context())
    # THEN it put 9 calls of 10 and stopped: one check before it registers the chunk's rows, one
    # before each call, the first too (a registration can take long)
    put = tap.received()
    assert (len(put), result["emitted"], result["stopped"], result["remaining"]) == (90, 90, True, 0)
    assert sorted(int(event["detail"]["request"]["caseId"][5:]) for event in put) == list(range(90))
    # AND a chunk of a request that is no longer running puts nothing at all
    assert module.handler(chunk_event("req-c", cases, chunk=1), context())["emitted"] == 0
    assert tap.received() == []


class RefusingBus:
    """The events client, refusing the entries of the caseIds in `refuse` (ThrottlingException)
    for their first `times` puts, or for good."""

    def __init__(self, real: Any, refuse: set[str], times: int | None = None) -> None:
        self.real, self.refuse, self.times = real, refuse, times
        self.refusals: dict[str, int] = {}
        self.sent: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        results, accepted = [], []
        for entry in Entries:
            case_id = json.loads(entry["Detail"])["request"]["caseId"]
            count = self.refusals.get(case_id, 0)
            if case_id in self.refuse and (self.times is None or count < self.times):
                self.refusals[case_id] = count + 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                accepted.append(entry)
                self.sent.append(case_id)
                results.append({"EventId": "x"})
        if accepted:
            self.real.put_events(Entries=accepted)
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def open_counter(ddb: Any, request_id: str, target: int) -> None:
    ddb.put_item(TableName=COUNTER_TABLE, Item={c.ATTR_REQUEST_ID: {"S": request_id},
                                                c.ATTR_EXPECTED: {"N": str(target)},
                                                c.ATTR_COUNTER: {"N": "0"}, c.ATTR_STATUS: {"S": c.STATUS_RUNNING}})


def chunk_event(request_id: str, cases: list[dict[str, Any]], *, chunk: int = 0, shards: int = 1,
                **extra: Any) -> dict[str, Any]:
    """Store a chunk as Prepare does, and open the request (a RUNNING counter row, unless the
    test made one); the Emit input PreProcess gives it (the first attempt)."""
    with contextlib.suppress(ClientError):
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=COUNTER_TABLE, Item={c.ATTR_REQUEST_ID: {"S": request_id}, c.ATTR_STATUS: {"S": c.STATUS_RUNNING},
                                           c.ATTR_EXPECTED: {"N": str(len(cases))}, c.ATTR_COUNTER: {"N": "0"}},
            ConditionExpression="attribute_not_exists(requestId)")
    prefix = f"chunks/{request_id}/t/"
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=f"{prefix}{chunk:06d}.json", Body=json.dumps(cases).encode())
    return {"requestId": request_id, "chunk": chunk, "chunkPrefix": prefix, c.DETAIL_SHARDS: str(shards),
            "deadline": "2000000000", "expiresAt": "2000086400", "attempt": 0, "registered": False,
            "retryCount": 0, **extra}


def rows(ddb: Any, request_id: str) -> dict[str, dict[str, Any]]:
    """Every results row of a request, whatever its shard (each row names its requestId)."""
    from lambda_fns.support import plain_item

    items = ddb.scan(TableName=RESULTS_TABLE, FilterExpression="#r = :r",
                     ExpressionAttributeNames={"#r": c.ATTR_REQUEST_ID},
                     ExpressionAttributeValues={":r": {"S": request_id}})["Items"]
    return {row[c.ATTR_CASE_ID]: row for row in map(plain_item, items)}


def test_emit_registers_each_case_then_puts_one_event_per_case_in_calls_of_ten(
        emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a bus tapped for the fan-out source, and a chunk of 25 cases in S3
    module, ddb, tap = emit
    cases = [{"caseId": f"case-{i}"} for i in range(25)]
    # WHEN Emit runs
    result = module.handler(chunk_event("req-25", cases), context())
    # THEN every case has a pending results row (its membership of the request), expiring with the request
    registered = rows(ddb, "req-25")
    assert set(registered) == {case["caseId"] for case in cases}
    assert {(row[c.ATTR_STATE], row[c.ATTR_EXPIRES_AT]) for row in registered.values()} == {
        (c.CASE_PENDING, 2000086400)}
    # AND it made ceil(25/10) calls, and the chunk is done
    assert (result["remaining"], result["putEventsCalls"], result["lost"], result["claimed"]) == (0, 3, 0, False)
    assert result["pending"] == [] and result["emitted"] == 25
    # AND 25 events arrived with the contract's source and detail, the deadline and shards with them
    received = tap.received()
    assert len(received) == 25
    assert {event["source"] for event in received} == {c.PREPROCESS_SOURCE}
    assert {event["detail-type"] for event in received} == {c.CASE_DETAIL_TYPE}
    details = sorted((event["detail"] for event in received), key=lambda d: int(d["request"]["caseId"][5:]))
    assert details == [{"requestId": "req-25", "request": case, c.DETAIL_DEADLINE: 2000000000, c.DETAIL_SHARDS: 1,
                        c.DETAIL_ATTEMPT: 1} for case in cases]


def test_emit_writes_each_row_in_its_shard_and_names_the_shards_in_each_event(
        emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a chunk of 40 cases of a request with 4 results shards
    module, ddb, tap = emit
    cases = [{"caseId": f"c{i}"} for i in range(40)]
    module.handler(chunk_event("req-s", cases, chunk=3, shards=4), context())
    # THEN each case's row is in the partition of its shard, crc32(caseId) % 4: "req-s#<shard>"
    from lambda_fns import keys

    by_partition: dict[str, set[str]] = {}
    for item in ddb.scan(TableName=RESULTS_TABLE)["Items"]:
        by_partition.setdefault(item[c.ATTR_REQUEST_SHARD]["S"], set()).add(item[c.ATTR_CASE_ID]["S"])
    expected: dict[str, set[str]] = {}
    for case in cases:
        expected.setdefault(f"req-s#{keys.shard_of(case['caseId'], 4)}", set()).add(case["caseId"])
    assert by_partition == expected and len(expected) == 4  # 40 cases reach every shard
    # AND every event carries the shard count, so a compute target finds the row from the event alone
    assert {event["detail"][c.DETAIL_SHARDS] for event in tap.received()} == {4}


def test_emit_returns_the_cases_not_accepted_with_a_jittered_backoff_and_resumes_from_them(
        emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN an EventBridge that throttles two cases of twelve on their first five puts
    module, _, tap = emit
    bus = RefusingBus(module._EVENTS, {"3", "11"}, times=5)
    module._EVENTS = bus
    cases = [{"caseId": str(i)} for i in range(12)]
    # WHEN Emit runs
    first = module.handler(chunk_event("req-r", cases), context())
    # THEN it does not fail: it returns the positions of the two not accepted, the next attempt and a wait
    assert first["pending"] == [3, 11]
    assert (first["remaining"], first["attempt"], first["registered"], first["lost"]) == (2, 1, True, 0)
    assert 1 <= first["waitSeconds"] <= c.FANOUT_BACKOFF_BASE_SECONDS
    # WHEN PreProcess calls it again with its output (after the wait)
    second = module.handler(first, context())
    # THEN only those two are put again, and the chunk is done: nothing accepted was re-emitted
    assert second["remaining"] == 0 and second["pending"] == []
    assert sorted(bus.sent, key=int) == [str(i) for i in range(12)]
    assert len(tap.received()) == 12


def test_emit_gives_up_a_chunk_after_its_last_attempt_and_lowers_the_target(
        emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a request of 4 cases, 2 of which EventBridge refuses for good
    module, ddb, _ = emit
    open_counter(ddb, "req-l", 4)
    module._EVENTS = RefusingBus(module._EVENTS, {"1", "2"})
    state = chunk_event("req-l", [{"caseId": str(i)} for i in range(4)])
    # WHEN Emit runs its three attempts
    for attempt in range(3):
        state = module.handler(state, context())
        assert state["attempt"] == attempt + 1
    # THEN the last gives the two up: no rows for them (nothing can record or count them) ...
    assert (state["remaining"], state["lost"], state["pending"]) == (0, 2, [])
    assert "ThrottlingException" in state["error"] and "chunk 0" in state["error"]
    assert set(rows(ddb, "req-l")) == {"0", "3"}
    # ... and the counter row's target drops by two, with the reason, and the chunk is recorded
    row = counter_row(ddb, "req-l")
    assert (row[c.ATTR_EXPECTED], row[c.ATTR_NOT_EMITTED]) == ({"N": "2"}, {"N": "2"})
    assert row[c.ATTR_LOST_CHUNKS] == {"NS": ["0"]}
    assert "not accepted by EventBridge after 3 attempts" in row[c.ATTR_FAN_OUT_ERROR]["S"]
    # AND (no case counted yet) the request is not claimed
    assert state["claimed"] is False and row[c.ATTR_STATUS] == {"S": c.STATUS_RUNNING}

    # WHEN the same abandonment runs again (Step Functions retrying a crashed invocation)
    module.handler({**state, "attempt": 3, "pending": [1, 2], "abandon": True, "error": "again"}, context())
    # THEN the target is lowered once only
    assert counter_row(ddb, "req-l")[c.ATTR_EXPECTED] == {"N": "2"}


def test_a_given_up_chunk_claims_the_request_when_every_emitted_case_is_counted(
        emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a request of 3 cases whose 2 emitted cases were counted already
    module, ddb, _ = emit
    open_counter(ddb, "req-k", 3)
    ddb.update_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": "req-k"}},
                    UpdateExpression="SET #n = :two", ExpressionAttributeNames={"#n": c.ATTR_COUNTER},
                    ExpressionAttributeValues={":two": {"N": "2"}})
    # WHEN the third case's chunk is given up (Emit itself failed for good on its first attempt)
    before = time.time()
    out = module.handler(chunk_event("req-k", [{"caseId": "2"}], chunk=1, abandon=True, error="Lambda.Unknown"),
                         context())
    # THEN the request is claimed for Summary at once (no deadline to wait for), with its claim time
    assert out["claimed"] is True and out["lost"] == 1
    row = counter_row(ddb, "req-k")
    assert row[c.ATTR_STATUS] == {"S": c.STATUS_SUMMARIZING}
    assert before - 1 <= float(row[c.ATTR_CLAIMED_AT]["N"]) <= time.time() + 1
    assert "chunk 1 could not be emitted: Lambda.Unknown" in row[c.ATTR_FAN_OUT_ERROR]["S"]


def test_emit_after_a_crash_registers_only_the_cases_without_a_row(emit: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a chunk whose first invocation registered it, and whose case 0 was computed since
    module, ddb, _ = emit
    cases = [{"caseId": str(i)} for i in range(3)]
    module.handler(chunk_event("req-x", cases), context())
    ddb.update_item(TableName=RESULTS_TABLE, Key={**results_key("req-x", "0")},
                    UpdateExpression="SET #s = :s, #o = :s", ExpressionAttributeNames={"#s": c.ATTR_STATE,
                                                                                    "#o": c.ATTR_OUTCOME},
                    ExpressionAttributeValues={":s": {"S": c.CASE_SUCCEEDED}})
    ddb.delete_item(TableName=RESULTS_TABLE, Key={**results_key("req-x", "2")})
    # WHEN Step Functions retries the invocation (same input, retryCount 1)
    module.handler(chunk_event("req-x", cases, retryCount=1), context())
    # THEN the computed and counted case keeps its row, and only the missing one is registered
    registered = rows(ddb, "req-x")
    assert registered["0"][c.ATTR_STATE] == c.CASE_SUCCEEDED and registered["0"][c.ATTR_OUTCOME] == c.CASE_SUCCEEDED
    assert registered["2"][c.ATTR_STATE] == c.CASE_PENDING


# --- compute ---------------------------------------------------------------------------------


@pytest.fixture
def compute(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, BusTap]]:
    monkeypatch.setenv(c.ENV_EVENTBUS_NAME, BUS)
    monkeypatch.setenv(c.ENV_EVENTBUS_SOURCE, c.COMPUTE_SOURCE)
    monkeypatch.setenv(c.ENV_EVENTBUS_DETAILTYPE, c.COMPLETION_DETAIL_TYPE)
    monkeypatch.setenv(c.ENV_RESULTS_TABLE, RESULTS_TABLE)
    monkeypatch.setenv(c.ENV_COMPUTE_SECONDS, "0")
    monkeypatch.setenv(c.ENV_COMPUTE_TYPE, c.COMPUTE_TYPE_LAMBDA_LARGE)
    ddb = make_results_table()
    tap = BusTap(c.COMPUTE_SOURCE)
    yield fresh("lambda_fns.compute"), ddb, tap


def case_event(request_id: str, case_id: str, *, deadline: float = 2e9) -> dict[str, Any]:
    return {
        "source": c.PREPROCESS_SOURCE,
        "detail-type": c.CASE_DETAIL_TYPE,
        "detail": {"requestId": request_id, "request": {"caseId": case_id}, c.DETAIL_DEADLINE: deadline},
    }


def register(ddb: Any, request_id: str, *case_ids: str) -> None:
    """What Emit does before putting a case's event: its pending results row."""
    for case_id in case_ids:
        ddb.put_item(TableName=RESULTS_TABLE, Item={
            **results_key(request_id, case_id), c.ATTR_REQUEST_ID: {"S": request_id},
            c.ATTR_STATE: {"S": c.CASE_PENDING}, c.ATTR_EXPIRES_AT: {"N": "77"}})


def results_row(ddb: Any, request_id: str, case_id: str) -> dict[str, Any]:
    from lambda_fns.support import plain_item

    item = ddb.get_item(
        TableName=RESULTS_TABLE, Key={**results_key(request_id, case_id)}
    )["Item"]
    return plain_item(item)


def test_compute_records_the_result_and_puts_the_completion_event(
    compute: tuple[ModuleType, Any, BusTap],
) -> None:
    # GIVEN a fan-out event for case 7 (registered by Emit) and COMPUTE_SECONDS=0
    module, ddb, tap = compute
    register(ddb, "req-c", "7")
    event = case_event("req-c", "7")
    # WHEN Compute runs
    out = module.handler(event, context())
    # THEN the results row says SUCCEEDED, with a duration, and keeps the request's expiry
    row = results_row(ddb, "req-c", "7")
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED
    assert c.ATTR_ERROR not in row
    assert isinstance(row[c.ATTR_DURATION_MS], int) and 0 <= row[c.ATTR_DURATION_MS] < 5000
    assert row[c.ATTR_EXPIRES_AT] == 77
    assert c.ATTR_OUTCOME not in row  # counting is Increment's job
    assert row[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_LAMBDA_LARGE  # the type its configuration names
    # AND the completion event is the case reference plus its state, from the compute source
    expected = {"requestId": "req-c", "request": {"caseId": "7"}, "state": c.CASE_SUCCEEDED, "error": "",
                c.DETAIL_SHARDS: 1}  # (an event without shards is a request of one)
    assert out == expected
    received = tap.received()
    assert len(received) == 1
    assert received[0]["source"] == c.COMPUTE_SOURCE
    assert received[0]["detail-type"] == c.COMPLETION_DETAIL_TYPE
    assert received[0]["detail"] == expected


def test_compute_reports_a_failing_case_instead_of_raising(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a computation that raises
    module, ddb, tap = compute

    def broken(request: dict[str, Any], seconds: float) -> dict[str, Any]:
        raise ValueError("input out of range")

    monkeypatch.setattr(module, "work", broken)
    register(ddb, "req-c", "3")
    event = case_event("req-c", "3")
    # WHEN Compute runs  THEN it does not raise
    out = module.handler(event, context())
    # AND the results row says FAILED with the error
    row = results_row(ddb, "req-c", "3")
    assert row[c.ATTR_STATE] == c.CASE_FAILED
    assert row[c.ATTR_ERROR] == "ValueError: input out of range"
    assert c.ATTR_EXPIRES_AT in row and c.ATTR_DURATION_MS in row
    # AND the completion event carries the failure and the error
    expected = {"requestId": "req-c", "request": {"caseId": "3"}, "state": c.CASE_FAILED,
                "error": "ValueError: input out of range", c.DETAIL_SHARDS: 1}
    assert out == expected
    received = tap.received()
    assert [e["detail"] for e in received] == [expected]


def test_compute_retry_after_a_stored_failure_reports_it_without_computing_again(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a case whose first run failed and stored its failure
    module, ddb, tap = compute
    register(ddb, "req-c", "1")
    monkeypatch.setattr(module, "work", lambda request, seconds: (_ for _ in ()).throw(RuntimeError("flaky")))
    module.handler(case_event("req-c", "1"), context())
    # WHEN the event is delivered again (Lambda's retry, or EventBridge's duplicate), with a work that would succeed
    calls: list[str] = []
    monkeypatch.setattr(module, "work", lambda request, seconds: calls.append(request["caseId"]))
    out = module.handler(case_event("req-c", "1"), context())
    # THEN the case is not computed again: the stored result is reported, so the row and the count agree
    assert calls == []
    assert out["state"] == c.CASE_FAILED and out["error"] == "RuntimeError: flaky"
    assert results_row(ddb, "req-c", "1")[c.ATTR_ERROR] == "RuntimeError: flaky"
    assert [e["detail"]["state"] for e in tap.received()] == [c.CASE_FAILED, c.CASE_FAILED]


def test_compute_rerun_after_the_case_was_counted_reports_nothing(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a case whose result Increment has counted (it marked the row with its outcome)
    module, ddb, tap = compute
    register(ddb, "req-d", "1")
    module.handler(case_event("req-d", "1"), context())
    ddb.update_item(TableName=RESULTS_TABLE, Key={**results_key("req-d", "1")},
                    UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": c.ATTR_OUTCOME},
                    ExpressionAttributeValues={":o": {"S": c.CASE_SUCCEEDED}})
    # WHEN a duplicate delivery comes, with a work that would fail this time
    monkeypatch.setattr(module, "work", lambda request, seconds: (_ for _ in ()).throw(RuntimeError("late")))
    out = module.handler(case_event("req-d", "1"), context())
    # THEN the counted row is unchanged and nothing more is reported
    row = results_row(ddb, "req-d", "1")
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED and row[c.ATTR_OUTCOME] == c.CASE_SUCCEEDED
    assert c.ATTR_ERROR not in row
    assert out["skipped"] == "COUNTED"
    assert [e["detail"]["state"] for e in tap.received()] == [c.CASE_SUCCEEDED]


def test_compute_neither_records_nor_reports_a_case_not_in_the_request(compute: tuple[ModuleType, Any, BusTap]) -> None:
    # GIVEN a fan-out event for a case Emit never registered (forged, or given up)
    module, ddb, tap = compute
    # WHEN Compute runs  THEN no row is created and no completion is put
    assert module.handler(case_event("req-f", "9"), context())["skipped"] == "NOT_IN_REQUEST"
    assert "Item" not in ddb.get_item(TableName=RESULTS_TABLE, Key={**results_key("req-f", "9")})
    assert tap.received() == []


def test_compute_skips_a_case_received_after_its_deadline(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a registered case whose request's deadline has passed (its event waited in Lambda's queue)
    module, ddb, tap = compute
    register(ddb, "req-e", "1")
    calls: list[str] = []
    monkeypatch.setattr(module, "work", lambda request, seconds: calls.append(request["caseId"]))
    metrics: list[str] = []
    monkeypatch.setattr(module._TELEMETRY, "metric", lambda name, unit, value: metrics.append(name))
    # WHEN Compute runs
    out = module.handler(case_event("req-e", "1", deadline=time.time() - 1), context())
    # THEN the case is not computed nor reported, and its row says it expired
    assert calls == [] and out["skipped"] == c.CASE_EXPIRED and tap.received() == []
    assert results_row(ddb, "req-e", "1")[c.ATTR_STATE] == c.CASE_EXPIRED
    # AND it counts as an expired case, not as work done
    assert metrics == [c.METRIC_CASES_EXPIRED]


# --- summary ---------------------------------------------------------------------------------


@pytest.fixture
def summary(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, Any, BusTap]]:
    monkeypatch.setenv(c.ENV_COUNTER_TABLE, COUNTER_TABLE)
    monkeypatch.setenv(c.ENV_RESULTS_TABLE, RESULTS_TABLE)
    monkeypatch.setenv(c.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(c.ENV_EVENTBUS_NAME, BUS)
    ddb = make_counter_table()
    make_results_table()
    s3 = make_bucket()
    tap = BusTap(c.SUMMARY_SOURCE)
    yield fresh("lambda_fns.summary"), ddb, s3, tap


def seed_request(
    ddb: Any, s3: Any, request_id: str, *, target: int, counter: int, results: list[dict[str, Any]],
    claimed_at: int | None = 1_700_000_000, shards: int = 3,
) -> None:
    """A counter row in SUMMARIZING (claimed at `claimed_at`), its manifest of caseIds
    0..target-1, and results rows, spread over `shards` shards (Summary reads them shard by shard)."""
    manifest_key = f"manifests/{request_id}/ctx.json"
    s3.put_object(
        Bucket=BUCKET,
        Key=manifest_key,
        Body=json.dumps({"requestId": request_id, "caseIds": [str(i) for i in range(target)]}).encode(),
    )
    ddb.put_item(
        TableName=COUNTER_TABLE,
        Item={
            c.ATTR_REQUEST_ID: {"S": request_id},
            c.ATTR_STATUS: {"S": c.STATUS_SUMMARIZING},
            c.ATTR_EXPECTED: {"N": str(target)},
            c.ATTR_COUNTER: {"N": str(counter)},
            c.ATTR_CREATED_AT: {"N": str(int(time.time()) - 30)},
            c.ATTR_MANIFEST_KEY: {"S": manifest_key},
            c.ATTR_SHARDS: {"N": str(shards)},
            **({c.ATTR_CLAIMED_AT: {"N": str(claimed_at)}} if claimed_at is not None else {}),
        },
    )
    for item in results:
        ddb.put_item(TableName=RESULTS_TABLE, Item={
            **results_key(request_id, item[c.ATTR_CASE_ID]["S"], shards), c.ATTR_REQUEST_ID: {"S": request_id}, **item})


def counter_row(ddb: Any, request_id: str) -> dict[str, Any]:
    return ddb.get_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": request_id}})["Item"]


def test_summary_on_deadline_reports_the_missing_case(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN 3 cases: 0 succeeded, 1 failed (counted from a crash's failure record: no result of its own), 2 never came
    module, ddb, s3, tap = summary
    seed_request(
        ddb,
        s3,
        "req-s",
        target=3,
        counter=2,
        results=[
            {
                c.ATTR_CASE_ID: {"S": "0"},
                c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED},
                c.ATTR_STATE: {"S": c.CASE_SUCCEEDED},
                c.ATTR_DURATION_MS: {"N": "5"},
                c.ATTR_EXPIRES_AT: {"N": "123"},
            },
            {c.ATTR_CASE_ID: {"S": "1"}, c.ATTR_OUTCOME: {"S": c.CASE_FAILED}, c.ATTR_OUTCOME_ERROR: {"S": "boom"},
             c.ATTR_STATE: {"S": c.CASE_PENDING}},
            {c.ATTR_CASE_ID: {"S": "2"}, c.ATTR_STATE: {"S": c.CASE_PENDING}},
        ],
    )
    # WHEN Summary runs because the deadline passed
    out = module.handler({"requestId": "req-s", "reason": c.REASON_TIMED_OUT}, context())
    # THEN the stored summary is TIMED_OUT, naming case 2, with 1 succeeded and 1 failed
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-s.json")["Body"].read())
    assert stored["status"] == c.STATUS_TIMED_OUT
    assert stored["timedOut"] == ["2"]
    assert (stored["succeeded"], stored["failed"], stored["target"]) == (1, 1, 3)
    assert stored["cases"] == [
        {"caseId": "0", "state": c.CASE_SUCCEEDED, "durationMs": 5},
        {"caseId": "1", "state": c.CASE_FAILED, "error": "boom"},
        {"caseId": "2", "state": c.STATUS_TIMED_OUT},
    ]
    assert out["summaryKey"] == "summaries/req-s.json" and out["status"] == c.STATUS_TIMED_OUT
    # AND the counter row is closed with the summary's key
    row = counter_row(ddb, "req-s")
    assert row[c.ATTR_STATUS] == {"S": c.STATUS_TIMED_OUT}
    assert row[c.ATTR_SUMMARY_KEY] == {"S": "summaries/req-s.json"}
    assert c.ATTR_COMPLETED_AT in row and c.ATTR_PUBLISHED_AT in row
    # AND the outcome was published once, from the summary source
    received = tap.received()
    assert len(received) == 1
    assert received[0]["detail-type"] == c.SUMMARY_DETAIL_TYPE
    assert received[0]["detail"]["status"] == c.STATUS_TIMED_OUT
    assert received[0]["detail"]["timedOut"] == ["2"]
    assert "cases" not in received[0]["detail"]

    # WHEN Summary is invoked again (a retried invocation)
    module.handler({"requestId": "req-s", "reason": c.REASON_TIMED_OUT}, context())
    # THEN it does not raise, the counter row is unchanged, and nothing is published again
    assert counter_row(ddb, "req-s") == row
    assert tap.received() == []


def test_summary_all_counted_succeeds(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN 3 cases all counted as succeeded
    module, ddb, s3, _ = summary
    seed_request(
        ddb,
        s3,
        "req-ok",
        target=3,
        counter=3,
        results=[
            {c.ATTR_CASE_ID: {"S": str(i)}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED}, c.ATTR_DURATION_MS: {"N": str(i)}}
            for i in range(3)
        ],
    )
    # WHEN Summary runs on completion
    out = module.handler({"requestId": "req-ok", "reason": c.REASON_COMPLETED}, context())
    # THEN SUCCEEDED everywhere
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-ok.json")["Body"].read())
    assert stored["status"] == out["status"] == c.STATUS_SUCCEEDED
    assert (stored["succeeded"], stored["failed"], stored["timedOut"]) == (3, 0, [])
    assert [case["caseId"] for case in stored["cases"]] == ["0", "1", "2"]
    assert counter_row(ddb, "req-ok")[c.ATTR_STATUS] == {"S": c.STATUS_SUCCEEDED}


def test_summary_stores_every_case_s_line_in_parts_beside_it(summary: tuple[ModuleType, Any, Any, BusTap],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 5 cases over 3 shards: 3 succeeded, 1 failed, 1 never completed; parts of 2 lines (100,000 deployed)
    module, ddb, s3, tap = summary
    monkeypatch.setattr(c, "RESULTS_PART_LINES", 2)
    outcomes = [c.CASE_SUCCEEDED, c.CASE_FAILED, c.CASE_SUCCEEDED, c.CASE_SUCCEEDED]
    seed_request(ddb, s3, "req-parts", target=5, counter=4, results=[
        {c.ATTR_CASE_ID: {"S": str(i)}, c.ATTR_OUTCOME: {"S": outcome}, c.ATTR_STATE: {"S": outcome},
         c.ATTR_DURATION_MS: {"N": str(10 * i)},
         **({c.ATTR_ERROR: {"S": "E: boom"}} if outcome == c.CASE_FAILED else {})}
        for i, outcome in enumerate(outcomes)])
    # WHEN Summary runs at the deadline
    module.handler({"requestId": "req-parts", "reason": c.REASON_TIMED_OUT}, context())
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-parts.json")["Body"].read())
    # THEN the summary names its per-case parts, under its run's prefix: 5 lines in 3 parts of at most 2,
    # and the 2 cases that did not succeed in a part of their own
    results = stored["results"]
    assert results["format"] == "jsonl" and results["lines"] == 5
    assert len(results["cases"]) == 3 and len(results["notSucceeded"]) == 1
    assert all(key.startswith("summaries/req-parts/ctx-0001/") for key in results["cases"] + results["notSucceeded"])

    def lines(keys_: list[str]) -> list[dict[str, Any]]:
        return [json.loads(line) for key in keys_
                for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]

    every = sorted(lines(results["cases"]), key=lambda line: line["caseId"])
    assert every == [
        {"caseId": "0", "state": c.CASE_SUCCEEDED, "durationMs": 0},
        {"caseId": "1", "state": c.CASE_FAILED, "durationMs": 10, "error": "E: boom"},
        {"caseId": "2", "state": c.CASE_SUCCEEDED, "durationMs": 20},
        {"caseId": "3", "state": c.CASE_SUCCEEDED, "durationMs": 30},
        {"caseId": "4", "state": c.STATUS_TIMED_OUT}]
    assert sorted(line["caseId"] for line in lines(results["notSucceeded"])) == ["1", "4"]
    # AND the summary itself holds the same cases in request order, the counts and the percentiles
    assert stored["cases"] == every
    assert (stored["status"], stored["succeeded"], stored["failed"], stored["timedOut"]) == (
        c.STATUS_TIMED_OUT, 3, 1, ["4"])
    assert stored["computeMs"]["p50"] == 10 and stored["computeMs"]["p99"] == 30
    # AND the published event carries the summary's key and counts, not its per-case list
    [event] = tap.received()
    assert "cases" not in event["detail"] and event["detail"]["summaryKey"] == "summaries/req-parts.json"


def test_summary_without_a_counter_row_raises(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN no counter row  WHEN Summary runs  THEN it names the request, and writes no summary
    module, _, s3, _ = summary
    with pytest.raises(LookupError, match="req-none"):
        module.handler({"requestId": "req-none", "reason": c.REASON_COMPLETED}, context())
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/").get("KeyCount") == 0


def test_a_summary_that_loses_the_close_writes_and_publishes_nothing(
        summary: tuple[ModuleType, Any, Any, BusTap], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a claimed request, and another Summary that closes it while this one aggregates
    module, ddb, s3, tap = summary
    seed_request(ddb, s3, "req-race", target=1, counter=1,
                 results=[{c.ATTR_CASE_ID: {"S": "0"}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED},
                           c.ATTR_STATE: {"S": c.CASE_SUCCEEDED}}])
    build = module._summary

    def meanwhile_closed(*args: Any, **kwargs: Any) -> dict[str, Any]:
        ddb.update_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": "req-race"}},
                        UpdateExpression="SET #s = :f, #d = :d, #k = :k",
                        ExpressionAttributeNames={"#s": c.ATTR_STATUS, "#d": c.ATTR_COMPLETED_AT,
                                                  "#k": c.ATTR_SUMMARY_KEY},
                        ExpressionAttributeValues={":f": {"S": c.STATUS_SUCCEEDED}, ":d": {"N": "1"},
                                                   ":k": {"S": "summaries/req-race.json"}})
        return build(*args, **kwargs)

    monkeypatch.setattr(module, "_summary", meanwhile_closed)
    # WHEN this one tries to close  THEN it loses, stores no summary and publishes nothing
    out = module.handler({"requestId": "req-race", "reason": c.REASON_COMPLETED}, context())
    assert out["summarized"] is False
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/").get("Contents", [])]
    assert "summaries/req-race.json" not in stored
    # (the results parts it wrote while aggregating are under its own run's prefix, which no
    # summary names; they expire with the request's records)
    assert all(key.startswith("summaries/req-race/ctx-0001/") for key in stored)
    assert tap.received() == []


def test_a_summary_under_a_claim_taken_over_does_not_close(summary: tuple[ModuleType, Any, Any, BusTap],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stale Summary, whose claim PreProcess takes over while it aggregates
    module, ddb, s3, tap = summary
    seed_request(ddb, s3, "req-stale", target=1, counter=1, claimed_at=1_000,
                 results=[{c.ATTR_CASE_ID: {"S": "0"}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED}}])
    build = module._summary

    def taken_over(*args: Any, **kwargs: Any) -> dict[str, Any]:
        ddb.update_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": "req-stale"}},
                        UpdateExpression="SET #c = :c", ExpressionAttributeNames={"#c": c.ATTR_CLAIMED_AT},
                        ExpressionAttributeValues={":c": {"N": "5000"}})
        return build(*args, **kwargs)

    monkeypatch.setattr(module, "_summary", taken_over)
    # WHEN it tries to close  THEN the row stays the new claim's, untouched
    assert module.handler({"requestId": "req-stale", "reason": c.REASON_TIMED_OUT}, context())["summarized"] is False
    row = counter_row(ddb, "req-stale")
    assert (row[c.ATTR_STATUS], row[c.ATTR_CLAIMED_AT]) == ({"S": c.STATUS_SUMMARIZING}, {"N": "5000"})
    assert tap.received() == []


def test_a_publish_that_failed_after_the_close_is_done_by_the_retry(
        summary: tuple[ModuleType, Any, Any, BusTap], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a Summary whose completion event cannot be put, after it closed the request
    module, ddb, s3, tap = summary
    seed_request(ddb, s3, "req-pub", target=1, counter=1,
                 results=[{c.ATTR_CASE_ID: {"S": "0"}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED}}])
    real = module.put_events

    def unavailable(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("EventBridge unavailable")

    monkeypatch.setattr(module, "put_events", unavailable)
    with pytest.raises(RuntimeError, match="unavailable"):
        module.handler({"requestId": "req-pub", "reason": c.REASON_COMPLETED}, context())
    closed = counter_row(ddb, "req-pub")
    assert closed[c.ATTR_STATUS] == {"S": c.STATUS_SUCCEEDED} and c.ATTR_PUBLISHED_AT not in closed
    stored = s3.get_object(Bucket=BUCKET, Key="summaries/req-pub.json")["Body"].read()
    # WHEN Summary runs again (its retry, or PreProcess at the deadline)
    monkeypatch.setattr(module, "put_events", real)
    module.handler({"requestId": "req-pub", "reason": c.REASON_TIMED_OUT}, context())
    # THEN the event is published once, with the closed status; the stored summary is the same document
    [event] = tap.received()
    assert event["detail"]["status"] == c.STATUS_SUCCEEDED
    assert c.ATTR_PUBLISHED_AT in counter_row(ddb, "req-pub")
    assert s3.get_object(Bucket=BUCKET, Key="summaries/req-pub.json")["Body"].read() == stored
    # AND a further run publishes nothing more
    module.handler({"requestId": "req-pub", "reason": c.REASON_TIMED_OUT}, context())
    assert tap.received() == []


def test_a_closed_request_whose_summary_was_never_stored_gets_it_from_the_closed_row(
        summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN a request closed as PARTIAL at a known time, whose closing run died before storing the summary
    module, ddb, s3, tap = summary
    seed_request(ddb, s3, "req-late", target=2, counter=2, results=[
        {c.ATTR_CASE_ID: {"S": "0"}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED}},
        {c.ATTR_CASE_ID: {"S": "1"}, c.ATTR_OUTCOME: {"S": c.CASE_FAILED}, c.ATTR_OUTCOME_ERROR: {"S": "E"}}])
    ddb.update_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": "req-late"}},
                    UpdateExpression="SET #s = :f, #d = :d, #k = :k",
                    ExpressionAttributeNames={"#s": c.ATTR_STATUS, "#d": c.ATTR_COMPLETED_AT, "#k": c.ATTR_SUMMARY_KEY},
                    ExpressionAttributeValues={":f": {"S": c.STATUS_PARTIAL}, ":d": {"N": "1700000100.5"},
                                               ":k": {"S": "summaries/req-late.json"}})
    # WHEN Summary runs  THEN it stores the summary of the close (its status and time) and publishes it
    module.handler({"requestId": "req-late", "reason": c.REASON_TIMED_OUT}, context())
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-late.json")["Body"].read())
    assert (stored["status"], stored["completedAt"]) == (c.STATUS_PARTIAL, 1700000100.5)
    assert [e["detail"]["status"] for e in tap.received()] == [c.STATUS_PARTIAL]
