"""Adaptations 7, 10, 12 and 24 (local/moto_patches/direct_calls.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import inspect
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.base_backend import AccountSpecificBackend, BackendDict, backend_lock
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from local import moto_patches
from tests.patch_helpers import (
    ACCOUNT,
    LAMBDA_ARN,
    REGION,
    Recorder,
    get,
    make_queue,
    make_table,
    put_event,
    put_rule,
    queue_bodies,
    with_patches,
)

# moto's own functions, taken before any test installs the patches.
assert not moto_patches.installed()
ORIGINAL_BACKEND_GETITEM = BackendDict.__getitem__


# -- 24. Endpoints kept -----------------------------------------------------------------------
def endpoints_resolved() -> list[Any]:
    """What botocore's endpoint resolution gives DynamoDB and EventBridge calls, for clients of
    several regions and settings and calls whose parameters feed the rule set; each call twice."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    out: list[Any] = []
    clients = [("dynamodb", {"region_name": "us-east-1"}), ("dynamodb", {"region_name": "eu-west-3"}),
               ("dynamodb", {"region_name": "us-east-1", "config": Config(use_fips_endpoint=True)}),
               ("dynamodb", {"region_name": "us-west-2", "config": Config(use_dualstack_endpoint=True)}),
               ("dynamodb", {"region_name": "us-east-1", "endpoint_url": "http://localhost:4677"}),
               ("dynamodb", {"region_name": "cn-north-1"}),
               ("events", {"region_name": "us-east-1"}), ("events", {"region_name": "ap-south-1"}),
               ("events", {"region_name": "us-east-1", "config": Config(use_fips_endpoint=True)})]
    calls = {"dynamodb": [("GetItem", {"TableName": "t", "Key": {}}),
                          ("GetItem", {"TableName": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t", "Key": {}}),
                          ("UpdateItem", {"TableName": "u", "Key": {}}), ("Query", {"TableName": "t"}),
                          ("BatchGetItem", {"RequestItems": {"t": {}, "u": {}}}),
                          ("TransactWriteItems", {"TransactItems": []}), ("ListTables", {})],
             "events": [("PutEvents", {"Entries": []}), ("PutEvents", {"Entries": [], "EndpointId": "abc.xyz"}),
                        ("PutRule", {"Name": "r"})]}
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    for service, options in clients:
        client = session.client(service, **options)
        resolver = client._ruleset_resolver
        for operation, args in calls[service]:
            model = client.meta.service_model.operation_model(operation)
            for _ in range(2):
                try:
                    endpoint = resolver.construct_endpoint(model, args, {})
                    out.append((service, operation, endpoint.url, endpoint.properties, endpoint.headers))
                except BotoCoreError as exc:
                    out.append((service, operation, type(exc).__name__, str(exc)))
    return out


def test_patched_endpoints_resolve_as_botocore_resolves_them(aws_env: None) -> None:
    # GIVEN the endpoints botocore resolves for DynamoDB and EventBridge calls of every kind
    assert not moto_patches.installed()
    unpatched_endpoints = endpoints_resolved()
    # WHEN the same resolutions run with the patches (parameters from a plan, endpoints kept)
    patched_endpoints = with_patches(endpoints_resolved)
    # THEN each is the same, errors included
    assert patched_endpoints == unpatched_endpoints
    assert any("fips" in str(endpoint[2]) for endpoint in patched_endpoints)
    assert any(endpoint[2] == "http://localhost:4677" for endpoint in patched_endpoints)


# -- 7. Backend lookup ----------------------------------------------------------------------
def lookup_while_backend_lock_is_held(backends: BackendDict, account: str) -> tuple[bool, list[Any]]:
    """Looks `account` up on another thread while this one holds moto's backend_lock.
    Returns whether the lookup was still waiting after 0.5 s, and what it returned."""
    found: list[Any] = []
    with backend_lock:
        lookup = threading.Thread(target=lambda: found.append(backends[account]), daemon=True)
        lookup.start()
        lookup.join(timeout=0.5)
        waited = lookup.is_alive()
    lookup.join(timeout=5)
    assert not lookup.is_alive()
    return waited, found


def test_unpatched_backend_lookup_takes_the_global_lock(unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches: every lookup takes backend_lock and scans every backend dict
    assert BackendDict.__getitem__ is ORIGINAL_BACKEND_GETITEM
    assert "_create_account_specific_backend" in inspect.getsource(BackendDict.__getitem__)
    source = inspect.getsource(BackendDict._create_account_specific_backend)
    assert "backend_lock" in source and "_instances" in source
    existing = dynamodb_backends[ACCOUNT]
    # WHEN an existing account is looked up while another thread holds backend_lock
    waited, found = lookup_while_backend_lock_is_held(dynamodb_backends, ACCOUNT)
    # THEN the lookup waits for it
    assert waited
    assert found == [existing] and found[0] is existing


def test_patched_backend_lookup_of_existing_account_is_direct(recorder: Recorder,
                                                              session: boto3.session.Session) -> None:
    # GIVEN the patches, and an account that has a backend
    assert BackendDict.__getitem__ is not ORIGINAL_BACKEND_GETITEM
    existing = ORIGINAL_BACKEND_GETITEM(dynamodb_backends, ACCOUNT)
    # WHEN it is looked up  THEN it is the same backend
    assert dynamodb_backends[ACCOUNT] is existing
    # AND the lookup does not wait for backend_lock
    waited, found = lookup_while_backend_lock_is_held(dynamodb_backends, ACCOUNT)
    assert not waited
    assert found[0] is existing


def test_patched_backend_lookup_of_new_account_creates_and_registers(recorder: Recorder) -> None:
    # GIVEN the patches, and a backend dict with no account yet
    backends = BackendDict(DynamoDBBackend, "dynamodb")
    assert backends not in BackendDict._instances
    try:
        # WHEN a new account is looked up
        created = backends["111111111111"]
        # THEN its backend is created, as moto does, and the dict is registered for reset
        assert isinstance(created, AccountSpecificBackend) and created.account_id == "111111111111"
        assert dict.__getitem__(backends, "111111111111") is created
        assert backends in BackendDict._instances
        # AND the next lookup returns that backend, whose regions work
        assert backends["111111111111"] is created
        assert created[REGION].account_id == "111111111111"
    finally:
        if backends in BackendDict._instances:
            BackendDict._instances.remove(backends)


# -- 10. In-process dispatch ------------------------------------------------------------------
def authorization_header(session: boto3.session.Session) -> str:
    sqs = session.client("sqs")
    seen: list[str] = []
    sqs.meta.events.register("before-send.sqs.*", lambda request, **_: seen.append(request.headers["Authorization"]))
    sqs.create_queue(QueueName="signed")
    return seen[0].decode() if isinstance(seen[0], bytes) else seen[0]


def test_unpatched_requests_are_signed(unpatched: None, session: boto3.session.Session) -> None:
    import re as regex

    header = authorization_header(session)
    assert regex.search(r"Signature=[0-9a-f]{64}$", header), header


def test_patched_requests_name_the_access_key_without_a_signature(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches  WHEN a request is sent  THEN it carries the access key, not a signature
    import re as regex

    header = authorization_header(session)
    assert regex.fullmatch(r"AWS4-HMAC-SHA256 Credential=\w+/\d{8}/us-east-1/sqs/aws4_request, "
                           r"SignedHeaders=host;x-amz-date, Signature=embedded", header), header
    # AND moto still serves every kind of service: JSON, query, REST (S3 through moto's own routing)
    assert session.client("sqs").list_queues()["QueueUrls"][0].endswith("/signed")
    make_table(session.client("dynamodb"))
    assert session.client("dynamodb").list_tables()["TableNames"] == ["t"]
    s3 = session.client("s3")
    s3.create_bucket(Bucket="fanflow-bucket")
    s3.put_object(Bucket="fanflow-bucket", Key="k/1", Body=b"one")
    assert s3.get_object(Bucket="fanflow-bucket", Key="k/1")["Body"].read() == b"one"
    # AND an error is still an error
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        session.client("dynamodb").describe_table(TableName="missing")


def test_patched_handler_methods_are_listed_once(recorder: Recorder) -> None:
    import moto.core.responses as moto_responses
    from moto.dynamodb.responses import DynamoHandler

    first = moto_responses.method_names_from_class(DynamoHandler)
    assert "update_item" in first
    assert moto_responses.method_names_from_class(DynamoHandler) is first


ACTION_NAMES = ("UpdateItem", "TransactWriteItems", "PutEvents", "ListTagsOfResource", "CreateDBInstance",
                "DescribeVpcs", "GetID", "ABCTest", "", "x", "EnableMFADevice", "S3Thing", "Get Item")


def test_unpatched_action_names_are_converted_at_every_call(unpatched: None) -> None:
    import moto.core.responses as moto_responses
    from moto.core.utils import camelcase_to_underscores

    assert moto_responses.camelcase_to_underscores is camelcase_to_underscores


def test_patched_action_names_convert_as_moto_converts_them(recorder: Recorder) -> None:
    # GIVEN the patches  WHEN action names are converted, twice  THEN each is what moto's function gives
    import moto.core.responses as moto_responses
    from moto.core.utils import camelcase_to_underscores

    assert moto_responses.camelcase_to_underscores is not camelcase_to_underscores
    for _ in range(2):
        assert [moto_responses.camelcase_to_underscores(name) for name in ACTION_NAMES] == [
            camelcase_to_underscores(name) for name in ACTION_NAMES]


# -- 10 (continued). DynamoDB responses written as JSON ---------------------------------------
def dynamodb_responses() -> list[dict[str, Any]]:
    """Responses to a tour of DynamoDB's item operations, in a fresh moto."""
    out: list[dict[str, Any]] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}])
        key = {"pk": {"S": "a"}, "sk": {"S": "9"}}
        rich = {"n": {"N": "1.5"}, "b": {"B": b"\x00\x01"}, "ss": {"SS": ["p", "q"]},
                "m": {"M": {"x": {"L": [{"S": "y"}, {"NULL": True}, {"BOOL": False}]}}}}
        for n in range(4):
            out.append(ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": str(n)}, **rich},
                                    ReturnValues="ALL_OLD"))
        out.append(ddb.put_item(TableName="t", Item={**key, "n": {"N": "1"}}, ReturnValues="ALL_OLD"))
        out.append(ddb.put_item(TableName="t", Item={**key, "n": {"N": "2"}}, ReturnValues="ALL_OLD"))
        out.append(ddb.get_item(TableName="t", Key=key))
        out.append(ddb.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "1"}}))
        out.append(ddb.get_item(TableName="t", Key={"pk": {"S": "none"}, "sk": {"S": "1"}}))
        for returns in ("ALL_NEW", "UPDATED_OLD", "NONE"):
            out.append(ddb.update_item(TableName="t", Key=key, UpdateExpression="ADD n :one",
                                       ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues=returns))
        query = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}
        out.append(ddb.query(TableName="t", Limit=2, **query))
        out.append(ddb.query(TableName="t", ReturnConsumedCapacity="TOTAL", **query))
        out.append(ddb.scan(TableName="t"))
        out.append(ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": {
            "pk": {"S": "c"}, "sk": {"S": "1"}}}}]))
        out.append(ddb.batch_get_item(RequestItems={"t": {"Keys": [{"pk": {"S": "a"}, "sk": {"S": "1"}}]}}))
        out.append(ddb.delete_item(TableName="t", Key={"pk": {"S": "c"}, "sk": {"S": "1"}}, ReturnValues="ALL_OLD"))
        with pytest.raises(ClientError) as failed:
            ddb.put_item(TableName="t", Item=key, ConditionExpression="attribute_not_exists(pk)",
                         ReturnValuesOnConditionCheckFailure="ALL_OLD")
        out.append(failed.value.response)
    for response in out:
        response.pop("ResponseMetadata", None)
    return out


def test_patched_dynamodb_responses_are_the_ones_moto_writes(aws_env: None) -> None:
    # GIVEN the responses moto writes itself
    assert not moto_patches.installed()
    unpatched_responses = dynamodb_responses()
    # WHEN the same operations run with the patches (plain JSON written with json.dumps)
    patched_responses = with_patches(dynamodb_responses)
    # THEN botocore reads exactly the same from both, binary values and absent members included
    assert patched_responses == unpatched_responses
    assert patched_responses[6]["Item"]["n"] == {"N": "2"}
    assert "Attributes" not in patched_responses[11]  # ReturnValues NONE
    assert "LastEvaluatedKey" in patched_responses[12] and "LastEvaluatedKey" not in patched_responses[13]


# -- 12. Direct in-process calls --------------------------------------------------------------
def sent_services(session: boto3.session.Session) -> list[str]:
    """The services whose calls reach botocore's `before-send` (the HTTP emulation) while a
    DynamoDB table, an EventBridge rule and an SQS queue are used."""
    sent: list[str] = []
    clients = {name: session.client(name) for name in ("dynamodb", "events", "sqs")}
    for name, client in clients.items():
        client.meta.events.register("before-send", lambda name=name, **_: sent.append(name))
    make_table(clients["dynamodb"])
    clients["dynamodb"].put_item(TableName="t", Item={"pk": {"S": "x"}, "n": {"N": "1"}})
    assert get(clients["dynamodb"], "x") == {"pk": {"S": "x"}, "n": {"N": "1"}}
    clients["events"].put_rule(Name="r", EventPattern=json.dumps({"source": ["fanflow.test"]}))
    assert [rule["Name"] for rule in clients["events"].list_rules()["Rules"]] == ["r"]
    clients["sqs"].create_queue(QueueName="q")
    return sorted(set(sent))


def test_unpatched_calls_go_through_the_http_emulation(unpatched: None, session: boto3.session.Session) -> None:
    assert sent_services(session) == ["dynamodb", "events", "sqs"]


def test_patched_dynamodb_and_eventbridge_calls_are_answered_before_sending(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches  WHEN DynamoDB, EventBridge and SQS are called
    # THEN only SQS (not in DIRECT_CALL_SERVICES) is still sent through the HTTP emulation
    assert sent_services(session) == ["sqs"]
    assert set(moto_patches.DIRECT_CALL_SERVICES) == {"dynamodb", "events"}


def test_patched_direct_calls_keep_errors_and_their_modeled_fields(
        recorder: Recorder, session: boto3.session.Session) -> None:
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "x"}, "n": {"N": "1"}})
    # a failed condition: the error code, and the old item it returns on request
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as failed:
        ddb.put_item(TableName="t", Item={"pk": {"S": "x"}}, ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert failed.value.response["Item"] == {"pk": {"S": "x"}, "n": {"N": "1"}}
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # a cancelled transaction: its cancellation reasons are a modeled member of the error
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "x"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "y"}}}},
        ])
    assert [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]] == [
        "ConditionalCheckFailed", "None"]
    assert get(ddb, "y") is None
    # unknown resources, in both services
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        ddb.describe_table(TableName="missing")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        session.client("events").describe_rule(Name="missing")
    # botocore's own parameter validation still runs first
    with pytest.raises(Exception, match="Missing required parameter"):
        ddb.get_item(TableName="t")


def test_patched_direct_put_events_still_routes_to_targets(recorder: Recorder,
                                                           session: boto3.session.Session) -> None:
    url, arn = make_queue(session)
    put_rule(session, [{"Id": "q", "Arn": arn}, {"Id": "fn", "Arn": LAMBDA_ARN}])
    put_event(session, detail={"requestId": "req-9"})
    assert [body["detail"] for body in queue_bodies(session, url)] == [{"requestId": "req-9"}]
    assert sorted(target["Id"] for target, _, _ in recorder.deliveries) == ["fn", "q"]
    assert [payload["detail"] for _, payload, _ in recorder.deliveries] == [{"requestId": "req-9"}] * 2


def test_patched_direct_calls_end_with_uninstall(aws_env: None) -> None:
    with mock_aws():
        rec = Recorder()
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
        try:  # a session made after install answers directly (one made before is unchanged)
            assert sent_services(boto3.session.Session(region_name=REGION)) == ["sqs"]
        finally:
            moto_patches.uninstall()
    with mock_aws():
        assert sent_services(boto3.session.Session(region_name=REGION)) == ["dynamodb", "events", "sqs"]


# -- 10 (continued). Request ids --------------------------------------------------------------
def test_unpatched_request_ids_are_drawn_a_character_at_a_time(unpatched: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.moto_api._internal import mock_random
    from moto.utilities.aws_headers import gen_amzn_requestid_long

    draws: list[None] = []
    original = mock_random.choice
    monkeypatch.setattr(mock_random, "choice", lambda seq: draws.append(None) or original(seq))
    headers: dict[str, Any] = {}
    request_id = gen_amzn_requestid_long(headers)
    assert len(request_id) == 52 and request_id.isalnum()
    assert headers == {"x-amzn-requestid": request_id} and len(draws) == 52


def test_patched_request_ids_are_one_draw_from_moto_random(recorder: Recorder) -> None:
    import moto.core.responses as moto_responses
    from moto.moto_api._internal import mock_random
    from moto.utilities import aws_headers

    assert moto_responses.gen_amzn_requestid_long is aws_headers.gen_amzn_requestid_long
    headers: dict[str, Any] = {}
    ids = [aws_headers.gen_amzn_requestid_long(headers) for _ in range(200)]
    assert all(len(i) == 52 and i.isalnum() and i.isascii() for i in ids)
    assert len(set(ids)) == 200 and headers == {"x-amzn-requestid": ids[-1]}
    # moto's random can still be seeded for repeatable ids
    mock_random.seed(7)
    first = aws_headers.gen_amzn_requestid_long()
    mock_random.seed(7)
    assert aws_headers.gen_amzn_requestid_long() == first
