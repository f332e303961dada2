"""Every adaptation in local/moto_patches.py, pinned against moto 5.2.5.

For each adaptation there are two kinds of test:
- `test_unpatched_*` pins what moto does WITHOUT the patches. If a moto upgrade changes that
  behaviour, the test fails: the patch may have become unnecessary or may now fight moto.
- `test_patched_*` checks that, with the patches installed, the behaviour is the one the
  embedded runtime relies on.
"""

from __future__ import annotations

import inspect
import io
import json
import statistics
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
import docker
import docker.errors
import jsonpath_ng.ext
import moto
import moto.stepfunctions.models as sfn_models
import moto.stepfunctions.parser.asl.utils.boto_client as boto_client
import moto.stepfunctions.parser.asl.utils.json_path as json_path
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.core.base_backend import AccountSpecificBackend, BackendDict, backend_lock
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item
from moto.events.models import EventBus, Rule
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

from local import moto_patches
from local.moto_patches import asl_engine

REGION = "us-east-1"
ACCOUNT = "123456789012"
EXECUTING = {"stepfunctions": {"execute_state_machine": True}}
LAMBDA_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:target-fn"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:target-sm"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fanflow-test"
PASS_DEFINITION = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
# The modules of moto's ASL engine that import `boto_client_for` by name.
ENGINE_CLIENT_MODULES = (
    "moto.stepfunctions.parser.asl.utils.boto_client",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
)
# moto's own functions, taken before any test installs the patches.
assert not moto_patches.installed()
ORIGINAL_ASL_PARSE = AmazonStateLanguageParser.parse
ORIGINAL_BACKEND_GETITEM = BackendDict.__getitem__
ORIGINAL_DYNAMODB_OPERATIONS = {name: getattr(DynamoDBBackend, name) for name in moto_patches.DYNAMODB_ITEM_OPERATIONS}


# -- fixtures -------------------------------------------------------------------------------
@dataclass
class Recorder:
    """Stands in for the runtime: records what moto hands the callbacks."""

    invocations: list[tuple[LambdaFunction, Any]] = field(default_factory=list)
    deliveries: list[tuple[dict[str, Any], Any, dict[str, Any]]] = field(default_factory=list)
    result: Any = field(default_factory=lambda: {"handled": True})
    errored: bool = False
    seconds: float = 0.0  # how long each invocation takes

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        self.invocations.append((fn, event))
        time.sleep(self.seconds)
        return json.dumps(self.result), self.errored, "handler log line"

    def deliver(self, target: dict[str, Any], *args: Any) -> None:
        # `deliver(target, event)`, the runtime rendering the input with `target_input`; earlier
        # versions of moto_patches rendered it themselves: `deliver(target, payload, event)`.
        if len(args) == 1:
            (event,) = args
            payload = moto_patches.target_input(target, event)
        else:
            payload, event = args
        self.deliveries.append((target, payload, event))
        if ":sqs:" in target["Arn"]:  # as the runtime does: the message body is the rendered input
            moto_patches.send_to_queue(target["Arn"], payload if isinstance(payload, str) else json.dumps(payload))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def unpatched() -> None:
    assert not moto_patches.installed(), "a previous test left the patches installed"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Patches installed, and always uninstalled, even when the test fails."""
    assert not moto_patches.installed(), "a previous test left the patches installed"
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        yield rec
    finally:
        moto_patches.uninstall()


@pytest.fixture
def session(aws_env: None) -> Iterator[boto3.session.Session]:
    """moto with the executing Step Functions backend, as the embedded runtime uses it."""
    with mock_aws(config=EXECUTING):
        yield boto3.session.Session(region_name=REGION)


# -- helpers --------------------------------------------------------------------------------
def make_queue(session: boto3.session.Session, name: str = "native-target") -> tuple[str, str]:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def queue_bodies(session: boto3.session.Session, url: str) -> list[Any]:
    messages = session.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def put_rule(session: boto3.session.Session, targets: list[dict[str, Any]], state: str = "ENABLED") -> None:
    events = session.client("events")
    events.put_rule(Name="rule", EventPattern=json.dumps({"source": ["fanflow.test"]}), State=state)
    events.put_targets(Rule="rule", Targets=targets)


def put_event(session: boto3.session.Session, source: str = "fanflow.test",
              detail: dict[str, Any] | None = None) -> None:
    detail = detail if detail is not None else {"requestId": "req-1", "n": 3}
    response = session.client("events").put_events(
        Entries=[{"Source": source, "DetailType": "Test", "Detail": json.dumps(detail)}]
    )
    assert response["FailedEntryCount"] == 0


def lambda_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/mod.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def create_function(session: boto3.session.Session, name: str = "fn") -> str:
    role = session.client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return session.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="pkg.mod.handler",
        Code={"ZipFile": lambda_zip()},
    )["FunctionArn"]


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{execution_arn} still RUNNING after {timeout}s"
        time.sleep(0.05)


def create_stack(session: boto3.session.Session, resources: dict[str, Any],
                 outputs: dict[str, Any]) -> dict[str, str]:
    cfn = session.client("cloudformation")
    cfn.create_stack(StackName="pinned", TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs}))
    stack = cfn.describe_stacks(StackName="pinned")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


BUS_TEMPLATE = {"Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "fanflow-bus"}}}
STATE_MACHINE_TEMPLATE = {
    "Machine": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"StateMachineName": "cfn-machine", "RoleArn": ROLE_ARN, "DefinitionString": PASS_DEFINITION},
    }
}


# -- version pin, install / uninstall -------------------------------------------------------
T = TypeVar("T")


def with_patches(run: Callable[[], T]) -> T:
    """`run`'s result with the patches installed (and uninstalled after), to compare with moto's own."""
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        return run()
    finally:
        moto_patches.uninstall()

def test_check_version_accepts_the_pinned_moto() -> None:
    # GIVEN the installed moto  WHEN checked  THEN it is the version the patches were written for
    assert moto.__version__ == moto_patches.PINNED_MOTO_VERSION
    moto_patches.check_version()


def test_check_version_rejects_another_moto(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    # GIVEN a moto that reports another version
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    # WHEN the version is checked, or the patches are installed  THEN both refuse
    with pytest.raises(moto_patches.MotoVersionError, match=r"5\.2\.6"):
        moto_patches.check_version()
    rec = Recorder()
    with pytest.raises(moto_patches.MotoVersionError):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    # AND nothing was patched
    assert not moto_patches.installed()
    assert "send_to_targets" in Rule.__dict__ and Rule.__dict__["send_to_targets"].__module__ == "moto.events.models"


def test_install_twice_raises(recorder: Recorder) -> None:
    # GIVEN installed patches  WHEN installed again  THEN it refuses, and the first install stays
    with pytest.raises(RuntimeError, match="already installed"):
        moto_patches.install(invoke=recorder.invoke, deliver=recorder.deliver)
    assert moto_patches.installed()


def _patch_points() -> dict[str, Any]:
    engine = {name: sys.modules[name].__dict__.get("boto_client_for") for name in ENGINE_CLIENT_MODULES
              if name in sys.modules}
    return {
        "Rule.send_to_targets": Rule.__dict__["send_to_targets"],
        "LambdaFunction._invoke_lambda": LambdaFunction.__dict__["_invoke_lambda"],
        "StepFunctionsParserBackend.start_execution": StepFunctionsParserBackend.__dict__["start_execution"],
        "EventBus.physical_resource_id": EventBus.__dict__.get("physical_resource_id", "<absent>"),
        "sfn_models.stepfunctions_backends": sfn_models.stepfunctions_backends,
        "json_path.parse": json_path.parse,
        **{f"{name}.boto_client_for": value for name, value in engine.items()},
    }


def test_uninstall_restores_every_original(unpatched: None) -> None:
    # GIVEN the originals, with every engine module already imported
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory  # noqa: F401

    before = _patch_points()
    assert set(ENGINE_CLIENT_MODULES) <= set(sys.modules)
    rec = Recorder()
    # WHEN the patches are installed
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        during = _patch_points()
        assert moto_patches._installed is not None
        recorded = list(moto_patches._installed.originals)
    finally:
        # AND uninstalled
        moto_patches.uninstall()
    after = _patch_points()
    # THEN every patch point changed while installed, and is the very original object afterwards
    changed = {name for name in before if during[name] is not before[name]}
    assert changed == set(before), f"not patched: {set(before) - changed}"
    restored = {name for name in before if after[name] is before[name]}
    assert restored == set(before), f"not restored: {set(before) - restored}"
    assert "physical_resource_id" not in EventBus.__dict__
    # AND so is every patch point install() recorded, including any added after this test was written
    # (a point patched twice, like DynamoDBBackend.transact_write_items, gets back its first original)
    first_recorded: dict[tuple[int, str], tuple[Any, str, Any]] = {}
    for owner, name, original in recorded:
        first_recorded.setdefault((id(owner), name), (owner, name, original))
    for owner, name, original in first_recorded.values():
        if original is moto_patches._MISSING:
            assert name not in owner.__dict__, f"{owner!r}.{name} left behind"
        else:
            assert owner.__dict__[name] is original, f"{owner!r}.{name} not restored"
    assert not moto_patches.installed()
    # AND a second uninstall is harmless, and the patches can be installed again
    moto_patches.uninstall()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    moto_patches.uninstall()
    assert _patch_points() == after


# -- 1. EventBridge rule targets: Lambda functions and state machines ----------------------
@pytest.mark.parametrize("target_arn", [LAMBDA_ARN, STATE_MACHINE_ARN], ids=["lambda", "state-machine"])
def test_unpatched_rule_with_lambda_or_state_machine_target_raises(
        unpatched: None, session: boto3.session.Session, target_arn: str) -> None:
    # GIVEN moto without the patches and a rule whose target is a Lambda function / state machine
    put_rule(session, [{"Id": "t", "Arn": target_arn}])
    # WHEN a matching event is put  THEN moto 5.2.5 has no delivery for that target type
    with pytest.raises(NotImplementedError, match="Expr not defined"):
        put_event(session)


def test_unpatched_disabled_rule_still_delivers(unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches and a DISABLED rule with an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "q", "Arn": queue_arn}], state="DISABLED")
    # WHEN a matching event is put
    put_event(session)
    # THEN moto 5.2.5 ignores the rule's state and delivers it anyway
    assert [body["detail"] for body in queue_bodies(session, url)] == [{"requestId": "req-1", "n": 3}]


def test_patched_rule_delivers_lambda_state_machine_and_sqs_targets(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a rule with a Lambda target (InputPath), a state machine target (whole event)
    # and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [
        {"Id": "fn", "Arn": LAMBDA_ARN, "InputPath": "$.detail"},
        {"Id": "sm", "Arn": STATE_MACHINE_ARN},
        {"Id": "q", "Arn": queue_arn},
    ])
    # WHEN a matching event is put
    put_event(session)
    # THEN every target goes to `deliver`, with its rendered input
    by_target = {target["Id"]: (payload, event) for target, payload, event in recorder.deliveries}
    assert set(by_target) == {"fn", "sm", "q"}
    assert by_target["fn"][0] == {"requestId": "req-1", "n": 3}
    whole, event = by_target["sm"]
    assert whole["detail"] == {"requestId": "req-1", "n": 3}
    assert whole["source"] == "fanflow.test" and whole["detail-type"] == "Test"
    assert "ingestion-time" not in whole
    assert time.strptime(whole["time"], "%Y-%m-%dT%H:%M:%SZ")
    # AND `deliver` also gets the event itself
    assert event["detail"] == {"requestId": "req-1", "n": 3} and event["id"] == whole["id"]
    # AND the SQS target's message (sent by the recorder, as by the runtime) is the whole event
    assert by_target["q"][0] == whole
    assert [body["detail"] for body in queue_bodies(session, url)] == [{"requestId": "req-1", "n": 3}]
    # AND nothing was invoked synchronously
    assert recorder.invocations == []


def test_patched_disabled_rule_delivers_nothing(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a DISABLED rule with a Lambda target and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "fn", "Arn": LAMBDA_ARN}, {"Id": "q", "Arn": queue_arn}], state="DISABLED")
    # WHEN a matching event is put
    put_event(session)
    # THEN no target receives it
    assert recorder.deliveries == []
    assert queue_bodies(session, url) == []


def test_patched_non_matching_event_delivers_nothing(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN an enabled rule with a Lambda target and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "fn", "Arn": LAMBDA_ARN}, {"Id": "q", "Arn": queue_arn}])
    # WHEN an event the pattern does not match is put
    put_event(session, source="someone.else")
    # THEN no target receives it
    assert recorder.deliveries == []
    assert queue_bodies(session, url) == []


def events_to_log_groups() -> list[Any]:
    """A bus of four rules whose targets are CloudWatch log groups (delivered by moto, patched or
    not), and PutEvents calls that match some, none, or are refused: each call's entries (event ids
    as a mark), and what each log group received (per event: its rule's message, with its id and
    times as marks)."""
    out: list[Any] = []
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        logs = boto3.client("logs", region_name=REGION)
        patterns = {"by-source": {"source": ["fanflow.a"]}, "by-number": {"detail": {"n": [{"numeric": [">", 2]}]}},
                    "by-both": {"source": ["fanflow.a"], "detail-type": ["T"]}, "never": {"source": ["nobody"]}}
        for name, pattern in patterns.items():
            logs.create_log_group(logGroupName=name)
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{
                "Id": "log", "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"}])
        calls = [
            [{"Source": "fanflow.a", "DetailType": "T", "Detail": json.dumps({"n": 3, "m": {"k": [1, 2]}})}],
            [{"Source": "fanflow.b", "DetailType": "T", "Detail": json.dumps({"n": 1})},
             {"Source": "fanflow.a", "DetailType": "U", "Detail": json.dumps({"n": 5}), "Resources": ["r"]}],
            [{"Source": "", "DetailType": "T", "Detail": "{}"},
             {"Source": "fanflow.a", "DetailType": "", "Detail": "{}"},
             {"Source": "fanflow.a", "DetailType": "T", "Detail": "{not json"},
             {"Source": "fanflow.c", "DetailType": "T", "Detail": json.dumps({"n": 9})}],
        ]
        for entries in calls:
            response = events.put_events(Entries=entries)
            out.append([{k: ("<id>" if k == "EventId" else v) for k, v in entry.items()}
                        for entry in response["Entries"]])
            out.append(response["FailedEntryCount"])
        with pytest.raises(ClientError) as too_many:
            events.put_events(Entries=[{"Source": "s", "DetailType": "T", "Detail": "{}"}] * 11)
        out.append(too_many.value.response["Error"]["Code"])
        for name in patterns:
            messages = [json.loads(e["message"]) for e in
                        logs.filter_log_events(logGroupName=name)["events"]]
            for message in messages:
                assert isinstance(message.pop("id"), str) and isinstance(message.pop("time"), str)
                message.pop("ingestion-time", None)
            out.append((name, sorted(messages, key=json.dumps)))
    return out


def test_patched_put_events_delivers_as_moto(aws_env: None) -> None:
    # GIVEN what moto delivers, rule by rule, for PutEvents calls that match some rules, none, or fail
    assert not moto_patches.installed()
    unpatched_answers = events_to_log_groups()
    # WHEN the same calls run with the patches (one message per entry for all the rules)
    patched_answers = with_patches(events_to_log_groups)
    # THEN the entries, the errors and every rule's messages are the same
    assert patched_answers == unpatched_answers
    assert ("by-source", []) not in patched_answers and ("never", []) in patched_answers


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


def _event() -> dict[str, Any]:
    return {
        "version": "0", "id": "e-1", "detail-type": "Test", "source": "fanflow.test",
        "account": ACCOUNT, "time": 0, "region": REGION, "resources": [],
        "detail": {"requestId": "req-1", "n": 3}, "ingestion-time": 1.5,
    }


def test_target_input_constant_input() -> None:
    # GIVEN a target with a constant Input  WHEN rendered  THEN the constant, parsed
    assert moto_patches.target_input({"Arn": LAMBDA_ARN, "Input": '{"fixed": [1, 2]}'}, _event()) == {"fixed": [1, 2]}


def test_target_input_input_path() -> None:
    # GIVEN a target with InputPath $.detail  WHEN rendered  THEN the event's detail
    target = {"Arn": LAMBDA_ARN, "InputPath": "$.detail"}
    assert moto_patches.target_input(target, _event()) == {"requestId": "req-1", "n": 3}
    # AND a path that matches nothing renders None
    assert moto_patches.target_input({"Arn": LAMBDA_ARN, "InputPath": "$.detail.missing"}, _event()) is None


def test_target_input_input_transformer() -> None:
    # GIVEN a target with an InputTransformer
    target = {"Arn": STATE_MACHINE_ARN, "InputTransformer": {
        "InputPathsMap": {"rid": "$.detail.requestId", "n": "$.detail.n"},
        "InputTemplate": '{"requestId": "<rid>", "count": <n>, "kind": "fixed"}',
    }}
    # WHEN rendered  THEN the template, filled from the paths
    assert moto_patches.target_input(target, _event()) == {"requestId": "req-1", "count": 3, "kind": "fixed"}


def test_target_input_whole_event() -> None:
    # GIVEN a target without input settings
    event = _event()
    # WHEN rendered
    whole = moto_patches.target_input({"Arn": LAMBDA_ARN}, event)
    # THEN the whole event, with "time" in ISO 8601 and without moto's "ingestion-time"
    expected = {k: v for k, v in _event().items() if k != "ingestion-time"}
    expected["time"] = "1970-01-01T00:00:00Z"
    assert whole == expected
    # AND the event itself is untouched
    assert event == _event()


# -- 2. Lambda invocations ------------------------------------------------------------------
def test_unpatched_invoke_needs_docker(unpatched: None, session: boto3.session.Session,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto without the patches, a Lambda function, and no Docker
    def no_docker(*args: Any, **kwargs: Any) -> Any:
        raise docker.errors.DockerException("no docker in this test")

    monkeypatch.setattr(docker, "from_env", no_docker)
    create_function(session)
    # WHEN it is invoked
    response = session.client("lambda").invoke(FunctionName="fn", Payload=b'{"a": 1}')
    # THEN moto 5.2.5 tries to run it in Docker and reports a function error instead of running it
    assert response["FunctionError"] == "Handled"
    assert response["Payload"].read().decode().startswith("error running docker: no docker in this test")


def test_patched_invoke_goes_to_callback(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a Lambda function created through the API
    arn = create_function(session)
    recorder.result = {"answer": 42}
    # WHEN it is invoked
    response = session.client("lambda").invoke(FunctionName="fn", Payload=b'{"a": 1}')
    # THEN `invoke` got moto's function and the parsed event
    [(fn, event)] = recorder.invocations
    assert isinstance(fn, LambdaFunction) and fn.function_arn == arn and fn.handler == "pkg.mod.handler"
    assert event == {"a": 1}
    # AND the response payload is what `invoke` returned, without a function error
    assert json.loads(response["Payload"].read()) == {"answer": 42}
    assert "FunctionError" not in response


def test_patched_invoke_reports_function_error(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a Lambda function whose invocation errs
    create_function(session)
    recorder.result = {"errorType": "ValueError", "errorMessage": "boom"}
    recorder.errored = True
    # WHEN it is invoked
    response = session.client("lambda").invoke(FunctionName="fn", Payload=b"{}")
    # THEN the response carries FunctionError and the error payload
    assert response["FunctionError"] == "Handled"
    assert json.loads(response["Payload"].read())["errorType"] == "ValueError"


def test_patched_task_state_invokes_lambda_through_callback(recorder: Recorder,
                                                            session: boto3.session.Session) -> None:
    # GIVEN a state machine whose Task state invokes a Lambda function
    arn = create_function(session)
    recorder.result = {"done": True}
    sfn = session.client("stepfunctions")
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": arn, "End": True}}}
    machine = sfn.create_state_machine(name="tasks", definition=json.dumps(definition), roleArn=ROLE_ARN)
    # WHEN an execution runs
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input='{"k": 1}')
    described = wait_for_execution(sfn, execution["executionArn"])
    # THEN the task went through `invoke`, and its result is the execution's output
    assert described["status"] == "SUCCEEDED"
    assert [event for _, event in recorder.invocations] == [{"k": 1}]
    assert json.loads(described["output"]) == {"done": True}


# -- 3. Executions started without a name ---------------------------------------------------
def test_unpatched_unnamed_execution_is_named_none(unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches and a state machine
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", definition=PASS_DEFINITION, roleArn=ROLE_ARN)
    # WHEN an execution is started without a name
    first = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    # THEN it is named "None"
    assert first.endswith(":None")
    assert wait_for_execution(sfn, first)["status"] == "SUCCEEDED"
    # AND once it has finished, the next unnamed start collides with it
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists, match=r"execution:m:None"):
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"])


def test_patched_unnamed_executions_get_unique_names(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a state machine
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", definition=PASS_DEFINITION, roleArn=ROLE_ARN)
    # WHEN two executions are started without a name, and one with a name
    first = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    second = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    named = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="given")["executionArn"]
    # THEN the unnamed ones get distinct uuid names, and a given name is kept
    assert first != second
    for arn in (first, second):
        assert not arn.endswith(":None")
        uuid.UUID(arn.rsplit(":", 1)[1])
    assert named.endswith(":given")
    # AND all of them run
    assert {wait_for_execution(sfn, arn)["status"] for arn in (first, second, named)} == {"SUCCEEDED"}


# -- 4. CloudFormation ----------------------------------------------------------------------
def test_unpatched_event_bus_ref_is_not_its_name(unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches  THEN EventBus has no physical resource id
    assert not hasattr(EventBus, "physical_resource_id")
    # WHEN a stack outputs a Ref to an event bus
    outputs = create_stack(session, BUS_TEMPLATE, {"BusName": {"Value": {"Ref": "Bus"}}})
    # THEN the Ref resolves to the Python object, not the bus name
    assert outputs["BusName"] != "fanflow-bus"
    assert "EventBus object" in outputs["BusName"]


def test_patched_event_bus_ref_is_its_name(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches  WHEN a stack outputs a Ref to an event bus  THEN it is the bus name
    outputs = create_stack(session, BUS_TEMPLATE, {"BusName": {"Value": {"Ref": "Bus"}}})
    assert outputs["BusName"] == "fanflow-bus"
    # AND events put on that bus by name reach its rules
    url, queue_arn = make_queue(session)
    events = session.client("events")
    events.put_rule(Name="on-bus", EventBusName=outputs["BusName"], EventPattern='{"source": ["fanflow.test"]}')
    events.put_targets(Rule="on-bus", EventBusName=outputs["BusName"], Targets=[{"Id": "q", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": "fanflow.test", "DetailType": "T", "Detail": "{}",
                                "EventBusName": outputs["BusName"]}])
    assert len(queue_bodies(session, url)) == 1


def test_unpatched_cloudformation_state_machine_is_not_executable(
        unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches, with the executing Step Functions backend
    # WHEN a stack creates a state machine
    outputs = create_stack(session, STATE_MACHINE_TEMPLATE, {"Arn": {"Value": {"Ref": "Machine"}}})
    # THEN it lands in the non-executing backend, invisible to the API
    assert outputs["Arn"] in {m.arn for m in sfn_models.stepfunctions_backends[ACCOUNT][REGION].state_machines}
    assert session.client("stepfunctions").list_state_machines()["stateMachines"] == []


def test_patched_cloudformation_state_machine_is_executable(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches  WHEN a stack creates a state machine
    outputs = create_stack(session, STATE_MACHINE_TEMPLATE, {"Arn": {"Value": {"Ref": "Machine"}}})
    sfn = session.client("stepfunctions")
    # THEN it is visible through the API, in the executing backend
    assert [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]] == [outputs["Arn"]]
    assert stepfunctions_parser_backends[ACCOUNT][REGION].describe_state_machine(outputs["Arn"]).name == "cfn-machine"
    # AND an execution of it succeeds
    execution = sfn.start_execution(stateMachineArn=outputs["Arn"], input='{"x": 1}')
    described = wait_for_execution(sfn, execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"x": 1}


# -- 5. Engine caches -----------------------------------------------------------------------
def test_unpatched_engine_parses_and_builds_clients_anew(unpatched: None) -> None:
    # GIVEN moto without the patches
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory  # noqa: F401

    # THEN the engine parses a JSONPath anew on each use
    assert json_path.parse is jsonpath_ng.ext.parse
    assert json_path.parse("$.detail.n") is not json_path.parse("$.detail.n")
    # AND builds a new boto3 client on each call
    assert boto_client.boto_client_for(REGION, "lambda") is not boto_client.boto_client_for(REGION, "lambda")
    # AND its modules hold `boto_client_for` by name, so patching boto_client alone would miss them
    for name in ENGINE_CLIENT_MODULES:
        assert sys.modules[name].boto_client_for is boto_client.boto_client_for, name


def test_patched_engine_caches(recorder: Recorder) -> None:
    # GIVEN the patches
    # WHEN the engine parses the same JSONPath twice  THEN it gets the identical parsed object
    assert json_path.parse is moto_patches._jsonpath
    assert json_path.parse("$.detail.n") is json_path.parse("$.detail.n")
    assert json_path.extract_json("$.detail.n", {"detail": {"n": 3}}) == 3
    # AND every engine module that imported `boto_client_for` has the one cached variant
    cached = boto_client.boto_client_for
    assert cached.__module__ == asl_engine.__name__
    for name in ENGINE_CLIENT_MODULES:
        assert sys.modules[name].boto_client_for is cached, name
    # AND it returns one client per (region, service)
    assert cached(REGION, "lambda") is cached(REGION, "lambda")
    assert cached(REGION, "lambda") is not cached(REGION, "sqs")
    assert cached(REGION, "lambda") is not cached("eu-west-1", "lambda")


# -- 5b. Definition parse trees -------------------------------------------------------------
CHOICE_DEFINITION = json.dumps({
    "StartAt": "Route",
    "States": {
        "Route": {"Type": "Choice", "Default": "Small",
                  "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"}]},
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "Next": "Hold"},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "Next": "Hold"},
        # Keeps both executions running at the same time.
        "Hold": {"Type": "Wait", "Seconds": 1, "End": True},
    },
})
BROKEN_DEFINITION = '{"StartAt": "P"'


def count_antlr_parses(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Counts every ANTLR parse of a whole state machine definition."""
    calls: list[None] = []
    original = ASLParser.state_machine

    def counting(self: ASLParser) -> Any:
        calls.append(None)
        return original(self)

    monkeypatch.setattr(ASLParser, "state_machine", counting)
    return calls


def run_two_executions_at_once(session: boto3.session.Session) -> list[dict[str, Any]]:
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="choice", definition=CHOICE_DEFINITION, roleArn=ROLE_ARN)
    arns = [sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=f"run-{n}",
                                input=json.dumps({"n": n}))["executionArn"] for n in (9, 1)]
    assert {sfn.describe_execution(executionArn=arn)["status"] for arn in arns} == {"RUNNING"}
    return [wait_for_execution(sfn, arn) for arn in arns]


def test_unpatched_definition_is_parsed_anew_on_every_call(unpatched: None) -> None:
    # GIVEN moto without the patches
    assert AmazonStateLanguageParser.parse is ORIGINAL_ASL_PARSE
    # WHEN the same definition is parsed twice
    first_program, first_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    # THEN ANTLR built a new tree each time, and new evaluation components
    assert first_tree is not second_tree
    assert first_tree.getText() == second_tree.getText()
    assert first_program is not second_program


def test_unpatched_every_execution_parses_the_definition(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto without the patches, counting ANTLR parses
    parses = count_antlr_parses(monkeypatch)
    # WHEN a state machine is created and two executions of it run
    outputs = [json.loads(d["output"]) for d in run_two_executions_at_once(session)]
    # THEN the definition was parsed at creation and once more for each execution
    assert outputs == [{"n": 9, "size": "big"}, {"n": 1, "size": "small"}]
    assert len(parses) == 3


def test_patched_definition_parse_tree_is_cached(recorder: Recorder) -> None:
    # GIVEN the patches
    assert AmazonStateLanguageParser.parse is not ORIGINAL_ASL_PARSE
    # WHEN the same definition is parsed twice
    first_program, first_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    # THEN both get the one ANTLR tree, the one moto would have built
    assert first_tree is second_tree
    moto_program, moto_tree = ORIGINAL_ASL_PARSE(PASS_DEFINITION)
    assert first_tree.getText() == moto_tree.getText()
    # AND both share the evaluation components, of the kind moto builds, with heap keys set
    assert first_program is second_program
    assert type(first_program) is type(moto_program)
    assert first_program.__dict__.get("_EvalComponent__heap_key") is not None
    # AND another definition gets another tree
    assert AmazonStateLanguageParser.parse(CHOICE_DEFINITION)[1] is not first_tree


def test_patched_parallel_definitions_get_their_own_components(recorder: Recorder) -> None:
    # GIVEN a definition with a Parallel state (its branches keep per-evaluation state)
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}]}}})
    # WHEN it is parsed twice  THEN the tree is shared but the components are not
    first_program, first_tree = AmazonStateLanguageParser.parse(definition)
    second_program, second_tree = AmazonStateLanguageParser.parse(definition)
    assert first_tree is second_tree
    assert first_program is not second_program


def test_patched_definition_syntax_error_still_raises(recorder: Recorder) -> None:
    # GIVEN the patches, and the error moto reports for a truncated definition
    with pytest.raises(ASLParserException) as moto_error:
        ORIGINAL_ASL_PARSE(BROKEN_DEFINITION)
    # WHEN it is parsed, twice (a failure must not be cached as a tree)
    for _ in range(2):
        # THEN it raises the same ASLParserException
        with pytest.raises(ASLParserException) as patched_error:
            AmazonStateLanguageParser.parse(BROKEN_DEFINITION)
        assert patched_error.value.errors == moto_error.value.errors


def test_patched_concurrent_executions_share_the_tree_not_the_state(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the patches, counting ANTLR parses
    parses = count_antlr_parses(monkeypatch)
    # WHEN two executions of one Choice state machine, with different inputs, run at the same time
    described = run_two_executions_at_once(session)
    # THEN both succeed, each with the output of its own input
    assert [d["status"] for d in described] == ["SUCCEEDED", "SUCCEEDED"]
    assert [json.loads(d["output"]) for d in described] == [{"n": 9, "size": "big"}, {"n": 1, "size": "small"}]
    # AND the definition was parsed only once, when the state machine was created
    assert len(parses) == 1


# -- 6. DynamoDB ----------------------------------------------------------------------------
def make_table(ddb: Any, name: str = "t") -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


def get(ddb: Any, pk: str, table: str = "t") -> dict[str, Any] | None:
    return ddb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")


def add_one(pk: str, table: str = "t") -> dict[str, Any]:
    """An Update op: counter `n` of item `pk` += 1."""
    return {"Update": {"TableName": table, "Key": {"pk": {"S": pk}}, "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}


def put_new(pk: str, table: str = "t") -> dict[str, Any]:
    """A Put op, on condition that item `pk` does not exist yet."""
    return {"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "mark": {"BOOL": True}},
                    "ConditionExpression": "attribute_not_exists(pk)"}}


def n_equals(pk: str, n: int, op: str = "ConditionCheck", **extra: Any) -> dict[str, Any]:
    """An op (ConditionCheck by default) on condition that item `pk` has n == `n`."""
    return {op: {"TableName": "t", "Key": {"pk": {"S": pk}}, "ConditionExpression": "n = :n",
                 "ExpressionAttributeValues": {":n": {"N": str(n)}}, **extra}}


@dataclass
class ConcurrentWriter:
    thread: threading.Thread | None = None
    waited: bool | None = None  # still writing 0.5 s after it started


def write_from_another_thread_during_item_copy(monkeypatch: pytest.MonkeyPatch,
                                               backend: DynamoDBBackend) -> ConcurrentWriter:
    """The next deep copy of a DynamoDB item starts a put_item on another thread and waits up
    to 0.5 s for it: a concurrent writer landing exactly then."""
    original = Item.__deepcopy__
    writer = ConcurrentWriter()

    def deepcopy_with_concurrent_write(self: Item, memo: dict[int, Any]) -> Item:
        if writer.thread is None:
            writer.thread = threading.Thread(target=backend.put_item, args=("t", {"pk": {"S": "concurrent"}}),
                                             daemon=True)
            writer.thread.start()
            writer.thread.join(timeout=0.5)
            writer.waited = writer.thread.is_alive()
        return original(self, memo)

    monkeypatch.setattr(Item, "__deepcopy__", deepcopy_with_concurrent_write)
    return writer


def test_unpatched_dynamodb_transaction_breaks_when_another_thread_writes(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto without the patches, a table with an item, and a writer on another thread that
    # puts an item while the transaction copies the table
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    writer = write_from_another_thread_during_item_copy(monkeypatch, backend)
    # WHEN a transaction runs  THEN the writer is not held back, and the transaction fails
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        backend.transact_write_items([add_one("counter")])
    assert writer.waited is False


def test_patched_dynamodb_item_operations_are_wrapped(recorder: Recorder) -> None:
    # GIVEN the patches  THEN every item operation is a wrapper of moto's own (or of the
    # replacement TransactWriteItems), under the same name
    for name in moto_patches.DYNAMODB_ITEM_OPERATIONS:
        wrapper = DynamoDBBackend.__dict__[name]
        assert wrapper is not ORIGINAL_DYNAMODB_OPERATIONS[name], name
        if name == "transact_write_items":  # the replacement, with the engine's hooks bound
            assert wrapper.__wrapped__.__name__ == name
            assert wrapper.__wrapped__ is not ORIGINAL_DYNAMODB_OPERATIONS[name]
            continue
        assert wrapper.__wrapped__ is ORIGINAL_DYNAMODB_OPERATIONS[name], name
        assert wrapper.__name__ == ORIGINAL_DYNAMODB_OPERATIONS[name].__name__, name


def test_patched_dynamodb_write_from_another_thread_waits_for_the_transaction(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a table with an item, and a writer on another thread that puts an item while the
    # transaction copies an item
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    writer = write_from_another_thread_during_item_copy(monkeypatch, backend)
    # WHEN a transaction runs
    backend.transact_write_items([add_one("counter")])
    # THEN the writer was held back until the transaction had finished
    assert writer.waited is True
    assert writer.thread is not None
    writer.thread.join(timeout=5)
    assert not writer.thread.is_alive()
    # AND both writes landed
    assert get(ddb, "counter") == {"pk": {"S": "counter"}, "n": {"N": "1"}}
    assert get(ddb, "concurrent") == {"pk": {"S": "concurrent"}}


def test_patched_concurrent_transactions_apply_exactly_once(recorder: Recorder,
                                                            session: boto3.session.Session) -> None:
    # GIVEN a table, and 8 threads with a client each
    threads, iterations = 8, 25
    ddb = session.client("dynamodb")
    make_table(ddb)
    clients = [session.client("dynamodb") for _ in range(threads)]
    start = threading.Barrier(threads, timeout=30)
    failures: list[Exception] = []

    def work(thread: int) -> None:
        start.wait()
        for i in range(iterations):
            try:
                clients[thread].transact_write_items(
                    TransactItems=[add_one("counter"), put_new(f"mark-{thread}-{i}")])
            except Exception as exc:
                failures.append(exc)

    # WHEN each thread runs 25 transactions at once: counter += 1 and a new mark item
    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    # THEN every transaction succeeded, and each applied all of its writes exactly once
    assert failures == []
    assert get(ddb, "counter") == {"pk": {"S": "counter"}, "n": {"N": str(threads * iterations)}}
    items = [item for page in ddb.get_paginator("scan").paginate(TableName="t") for item in page["Items"]]
    marks = {item["pk"]["S"] for item in items if "mark" in item}
    assert marks == {f"mark-{t}-{i}" for t in range(threads) for i in range(iterations)}


def test_unpatched_transact_write_items_copies_every_table_it_touches(
        unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches: its TransactWriteItems deep-copies each table it touches
    source = inspect.getsource(DynamoDBBackend.transact_write_items)
    assert "copy.deepcopy(" in source and "self.tables[table_name]" in source
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    table = backend.tables["t"]
    # WHEN a transaction is cancelled
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[n_equals("a", 2)])
    # THEN the table was replaced by that copy, with the same items
    assert backend.tables["t"] is not table
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_patched_cancelled_transaction_leaves_the_table_in_place(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches, and a table with an item
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    table = dynamodb_backends[ACCOUNT][REGION].tables["t"]
    # WHEN a transaction is cancelled
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[n_equals("a", 2)])
    # THEN the table was not replaced by a copy (writes of other threads to it are kept)
    assert dynamodb_backends[ACCOUNT][REGION].tables["t"] is table


def test_patched_transaction_cost_does_not_grow_with_table_size(recorder: Recorder,
                                                                session: boto3.session.Session) -> None:
    # GIVEN a table with 10 items and one with 3000
    ddb = session.client("dynamodb")
    backend = dynamodb_backends[ACCOUNT][REGION]
    for table, size in (("small", 10), ("big", 3000)):
        make_table(ddb, table)
        for i in range(size):
            backend.put_item(table, {"pk": {"S": f"item-{i}"}, "payload": {"S": "x" * 50}})

    def median_cost(table: str) -> float:
        for i in range(5):  # warm-up
            ddb.transact_write_items(TransactItems=[add_one("counter", table), put_new(f"warm-{i}", table)])
        costs = []
        for i in range(50):
            started = time.perf_counter()
            ddb.transact_write_items(TransactItems=[add_one("counter", table), put_new(f"mark-{i}", table)])
            costs.append(time.perf_counter() - started)
        return statistics.median(costs)

    # WHEN 50 transactions run on each
    small, big = median_cost("small"), median_cost("big")
    # THEN one costs about the same on both (moto's own: ~30 times more on the big one)
    assert big / small < 3, f"small {small * 1000:.2f} ms, big {big * 1000:.2f} ms"
    assert get(ddb, "counter", "big") == {"pk": {"S": "counter"}, "n": {"N": "55"}}


# The semantics of TransactWriteItems, run against moto's own implementation (pinning it) and
# against the replacement, which must behave the same.
@pytest.fixture(params=["moto", "patched"])
def transact_impl(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("recorder" if request.param == "patched" else "unpatched")
    return str(request.param)


@pytest.fixture
def ddb(transact_impl: str, session: boto3.session.Session) -> Any:
    """A table "t" with items a (n=1) and b (n=1)."""
    client = session.client("dynamodb")
    make_table(client)
    for pk in ("a", "b"):
        client.put_item(TableName="t", Item={"pk": {"S": pk}, "n": {"N": "1"}})
    return client


def test_transaction_applies_every_write_when_all_conditions_pass(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a transaction's conditions all pass
    ddb.transact_write_items(TransactItems=[
        {"Update": {**add_one("a")["Update"], "ConditionExpression": "n = :one"}},
        put_new("c"),
        n_equals("b", 1),
    ])
    # THEN all of its writes are applied
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert get(ddb, "c") == {"pk": {"S": "c"}, "mark": {"BOOL": True}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}


def test_transaction_with_a_failed_condition_is_cancelled_whole(ddb: Any) -> None:
    # GIVEN items a and b  WHEN the condition of the second op fails
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[
            add_one("a"), n_equals("b", 2, op="Update", UpdateExpression="SET x = :n"), put_new("c")])
    # THEN the cancellation reasons say which, in order
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", "None"]
    assert "Item" not in reasons[1]
    # AND no write was applied
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    assert get(ddb, "c") is None


def test_transaction_with_two_ops_on_one_item_is_invalid(ddb: Any) -> None:
    # GIVEN item a  WHEN a transaction has two ops on it
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[add_one("a"), n_equals("a", 1)])
    # THEN it is a ValidationException, and nothing was written
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in invalid.value.response["Error"]["Message"]
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_transaction_with_more_than_100_items_is_invalid(ddb: Any) -> None:
    # GIVEN a transaction of 101 puts  WHEN it is written
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[put_new(f"p-{i}") for i in range(101)])
    # THEN it is a ValidationException, and nothing was written
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 100" in invalid.value.response["Error"]["Message"]
    assert get(ddb, "p-0") is None


def test_transaction_condition_check_gates_the_writes(ddb: Any) -> None:
    # GIVEN items a and b
    # WHEN a ConditionCheck on b passes  THEN the transaction's write is applied, and b is untouched
    ddb.transact_write_items(TransactItems=[n_equals("b", 1), add_one("a")])
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    # WHEN a ConditionCheck on b fails  THEN the transaction is cancelled, and nothing is written
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[n_equals("b", 5), add_one("a")])
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}


def test_transaction_put_and_delete(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a transaction puts c over nothing, replaces b, and deletes a
    ddb.transact_write_items(TransactItems=[
        put_new("c"),
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "replaced": {"S": "yes"}}}},
        {"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "ConditionExpression": "attribute_exists(pk)"}},
    ])
    # THEN all three are applied
    assert get(ddb, "c") == {"pk": {"S": "c"}, "mark": {"BOOL": True}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "replaced": {"S": "yes"}}
    assert get(ddb, "a") is None


def test_transaction_failing_write_rolls_back_the_others(ddb: Any) -> None:
    # GIVEN items a and b, and an item s whose n is a string
    ddb.put_item(TableName="t", Item={"pk": {"S": "s"}, "n": {"S": "text"}})
    # WHEN a transaction's conditions pass but its last write fails (ADD to a string)
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[add_one("a"), put_new("c"), add_one("s")])
    # THEN it is a ValidationException, and the writes before it were undone
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert get(ddb, "c") is None
    assert get(ddb, "s") == {"pk": {"S": "s"}, "n": {"S": "text"}}


def test_transaction_returns_the_old_item_of_a_failed_condition(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a condition on b fails, asking for ALL_OLD
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[
            add_one("a"), n_equals("b", 2, ReturnValuesOnConditionCheckFailure="ALL_OLD")])
    # THEN b's cancellation reason carries b as it was
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1].get("Item") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


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


def test_patched_result_path_parses_are_cached(recorder: Recorder) -> None:
    # GIVEN the patches  WHEN ResultPath's JSONPath parser is asked twice for one path
    import jsonpath_ng
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path

    # THEN it is no longer jsonpath_ng's own (which builds a parser per call), and returns one object
    assert result_path.parse is not jsonpath_ng.parse
    assert result_path.parse("$.a.b") is result_path.parse("$.a.b")
    assert str(result_path.parse("$.a.b")) == str(jsonpath_ng.parse("$.a.b"))


def test_unpatched_result_path_parses_anew() -> None:
    import jsonpath_ng
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path

    assert not moto_patches.installed()
    assert result_path.parse is jsonpath_ng.parse
    assert jsonpath_ng.parse("$.a") is not jsonpath_ng.parse("$.a")


# -- 8. Task states in the calling thread; execution names indexed --------------------------
PUT_ITEM_DEFINITION = json.dumps({
    "StartAt": "Put",
    "States": {"Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True,
                       "Parameters": {"TableName": "t", "Item": {"pk": {"S.$": "$.pk"}}},
                       "ResultPath": "$.put"}},
})


def threads_started_by(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch,
                       definition: str) -> tuple[list[str], dict[str, Any]]:
    """Runs one execution of `definition` and names every thread started meanwhile."""
    make_table(session.client("dynamodb"))
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="put", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started: list[str] = []
    original_start = threading.Thread.start
    # Only the threads this execution starts, directly or through the threads it started: an
    # execution left running by an earlier test (a PreProcess waiting for its deadline) may
    # start threads meanwhile.
    ours = {threading.current_thread()}

    def counting_start(self: threading.Thread) -> None:
        if threading.current_thread() in ours:
            started.append(getattr(self._target, "__qualname__", repr(self._target)))  # type: ignore[attr-defined]
            ours.add(self)
        original_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    arn = sfn.start_execution(stateMachineArn=machine, name="one", input=json.dumps({"pk": "a"}))["executionArn"]
    described = wait_for_execution(sfn, arn)
    monkeypatch.undo()
    return started, described


def test_unpatched_every_execution_and_task_state_gets_a_thread(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    started, described = threads_started_by(session, monkeypatch, PUT_ITEM_DEFINITION)
    assert described["status"] == "SUCCEEDED"
    # the execution's worker, then the program's thread, then one for the Task state
    assert len(started) == 3, started
    assert any("_exec_and_notify" in name for name in started)


def test_patched_task_state_runs_in_the_execution_thread(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    started, described = threads_started_by(session, monkeypatch, PUT_ITEM_DEFINITION)
    # THEN only the execution's worker thread is started, and the Task state's result is the same
    assert described["status"] == "SUCCEEDED"
    assert len(started) == 1, started
    assert json.loads(described["output"]) == {"pk": "a", "put": {}}
    assert get(session.client("dynamodb"), "a") == {"pk": {"S": "a"}}


def test_patched_task_state_with_timeout_still_times_out(recorder: Recorder,
                                                         session: boto3.session.Session) -> None:
    # GIVEN a Lambda Task state with TimeoutSeconds 1, whose function takes 3 s
    function_arn = create_function(session)
    recorder.seconds = 3
    definition = json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 1, "End": True,
        "Parameters": {"FunctionName": function_arn, "Payload": {}}}}})
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="slow", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started = time.monotonic()
    arn = sfn.start_execution(stateMachineArn=machine, name="slow-1")["executionArn"]
    described = wait_for_execution(sfn, arn)
    # THEN the state times out after its 1 s, as on AWS
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Timeout"
    assert time.monotonic() - started < 2.8


def test_patched_finished_threads_are_not_kept(recorder: Recorder, session: boto3.session.Session) -> None:
    from moto.stepfunctions.parser.utils import TMP_THREADS

    # GIVEN many finished threads in moto's list
    finished = []
    for _ in range(300):
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        finished.append(thread)
    TMP_THREADS.extend(finished)
    # WHEN an execution runs  THEN the list no longer holds them (only threads still running,
    # such as executions other tests left waiting)
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="pass", definition=PASS_DEFINITION, roleArn=ROLE_ARN)["stateMachineArn"]
    wait_for_execution(sfn, sfn.start_execution(stateMachineArn=machine, name="p")["executionArn"])
    held = {id(thread) for thread in TMP_THREADS}
    assert not any(id(thread) in held for thread in finished)


@pytest.mark.parametrize("patched", [False, True], ids=["unpatched", "patched"])
def test_execution_name_reuse(patched: bool, session: boto3.session.Session) -> None:
    # The same rules with and without the index: a running execution started again with the same
    # name and input is that execution; any other reuse of the name is refused.
    rec = Recorder()
    if patched:
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        sfn = session.client("stepfunctions")
        machine = sfn.create_state_machine(name="hold", definition=CHOICE_DEFINITION,
                                           roleArn=ROLE_ARN)["stateMachineArn"]
        for n in range(50):
            sfn.start_execution(stateMachineArn=machine, name=f"other-{n}", input=json.dumps({"n": n}))
        first = sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')["executionArn"]
        again = sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')["executionArn"]
        assert again == first
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 2}')
        wait_for_execution(sfn, first)
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="other-7", input='{"n": 7}')
    finally:
        moto_patches.uninstall()


# -- 9. DynamoDB expressions parsed once -----------------------------------------------------
def test_unpatched_update_expression_is_parsed_on_each_call(unpatched: None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    assert UpdateExpressionParser.make("SET a = :a") is not UpdateExpressionParser.make("SET a = :a")


def test_patched_expressions_are_cached_but_values_are_not(recorder: Recorder,
                                                           session: boto3.session.Session) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    # GIVEN the patches  THEN one update expression text gives one parsed tree
    assert UpdateExpressionParser.make("SET a = :a") is UpdateExpressionParser.make("SET a = :a")
    ddb = session.client("dynamodb")
    make_table(ddb)
    # WHEN the same update and condition texts run with different values
    for pk, n in (("x", "1"), ("y", "2"), ("x", "3")):
        ddb.update_item(TableName="t", Key={"pk": {"S": pk}}, UpdateExpression="SET n = :n",
                        ExpressionAttributeValues={":n": {"N": n}})
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET m = :n",
                    ConditionExpression="n = :expected",
                    ExpressionAttributeValues={":n": {"N": "9"}, ":expected": {"N": "3"}})
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET m = :n",
                        ConditionExpression="n = :expected",
                        ExpressionAttributeValues={":n": {"N": "10"}, ":expected": {"N": "1"}})
    # THEN each call used its own values
    assert get(ddb, "x") == {"pk": {"S": "x"}, "n": {"N": "3"}, "m": {"N": "9"}}
    assert get(ddb, "y") == {"pk": {"S": "y"}, "n": {"N": "2"}}
    # AND a bad expression, or an unused value, is still refused on every call
    for _ in range(2):
        with pytest.raises(ClientError, match="ValidationException"):
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET = :n",
                            ExpressionAttributeValues={":n": {"N": "1"}})
        with pytest.raises(ClientError, match="unused"):
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET n = :n",
                            ConditionExpression="n = :expected",
                            ExpressionAttributeValues={":n": {"N": "1"}, ":expected": {"N": "3"},
                                                       ":spare": {"N": "0"}})


def conditional_updates() -> list[Any]:
    """Conditional updates whose condition names one value and whose other values change at every
    call (as record_result's do), in a fresh moto: each call's response or error, and the items."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        make_table(ddb)
        for pk in ("a", "b", "c"):
            ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "state": {"S": "PENDING"}})
        calls = [("a", "PENDING", "1"), ("a", "PENDING", "2"), ("b", "PENDING", "3"), ("c", "DONE", "4"),
                 ("b", "PENDING", "5"), ("missing", "PENDING", "6")]
        for pk, expected, at in calls:
            for condition, names in (("#s = :p", {"#s": "state", "#at": "at"}),
                                     ("#s = :p AND attribute_not_exists(#x)", {"#s": "state", "#at": "at", "#x": "x"})):
                try:
                    out.append(ddb.update_item(
                        TableName="t", Key={"pk": {"S": pk}}, UpdateExpression="SET #s = :done, #at = :at",
                        ConditionExpression=condition, ExpressionAttributeNames=names,
                        ExpressionAttributeValues={":done": {"S": "DONE"}, ":at": {"N": at}, ":p": {"S": expected},
                                                   ":pending": {"S": "PENDING"}} if pk == "c" else
                        {":done": {"S": "DONE"}, ":at": {"N": at}, ":p": {"S": expected}},
                        ReturnValues="ALL_NEW"))
                except ClientError as exc:
                    out.append(exc.response["Error"])
                ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "state": {"S": "PENDING"}})
        # a value the condition names but the call leaves out still fails, as moto fails (KeyError)
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET #s = :done",
                            ConditionExpression="#s = :p", ExpressionAttributeNames={"#s": "state"},
                            ExpressionAttributeValues={":done": {"S": "DONE"}})
        except Exception as exc:
            out.append(exc.response["Error"] if isinstance(exc, ClientError) else repr(exc))
        out.append(ddb.scan(TableName="t")["Items"])
    for response in out:
        if isinstance(response, dict):
            response.pop("ResponseMetadata", None)
    return out


def test_patched_conditions_parsed_once_answer_as_moto(aws_env: None) -> None:
    # GIVEN what moto answers to conditional updates whose other values change at every call
    assert not moto_patches.installed()
    unpatched_answers = conditional_updates()
    # WHEN the same calls run with the patches (the condition parsed once, by its own placeholders)
    patched_answers = with_patches(conditional_updates)
    # THEN every answer, error and item is the same
    assert patched_answers == unpatched_answers
    assert any("ConditionalCheckFailed" in str(answer) for answer in patched_answers)


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


def query_pages() -> list[Any]:
    """Every page of queries and scans over tables whose keys are strings or numbers (hash and
    range, hash only, a global index), several hash keys each, in a fresh moto."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        for name, hash_type, range_type in (("sn", "S", "N"), ("ns", "N", "S"), ("s", "S", None), ("n", "N", None)):
            schema = [{"AttributeName": "h", "KeyType": "HASH"}]
            attributes = [{"AttributeName": "h", "AttributeType": hash_type},
                          {"AttributeName": "g", "AttributeType": "S"}]
            if range_type:
                schema.append({"AttributeName": "r", "KeyType": "RANGE"})
                attributes.append({"AttributeName": "r", "AttributeType": range_type})
            index = {"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                     "Projection": {"ProjectionType": "ALL"}}
            ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attributes,
                             BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=[index])
            hashes = ["10", "9", "1", "2"] if hash_type == "N" else ["b", "a", "c", "a1"]
            for n in range(40):
                item = {"h": {hash_type: hashes[n % 4]}, "g": {"S": f"g{n % 3}"}, "v": {"N": str(n)},
                        "pad": {"S": "x" * n}}
                if range_type:
                    item["r"] = {range_type: str(n * 7 % 23) if range_type == "N" else f"k{n * 7 % 23}"}
                ddb.put_item(TableName=name, Item=item)
            gone = {"r": {range_type: "7" if range_type == "N" else "k7"}} if range_type else {}
            ddb.delete_item(TableName=name, Key={"h": {hash_type: hashes[1]}, **gone})
            queries: list[dict[str, Any]] = []
            for h in [*hashes, "404" if hash_type == "N" else "none"]:
                base = {"TableName": name, "KeyConditionExpression": "h = :h",
                        "ExpressionAttributeValues": {":h": {hash_type: h}}}
                queries += [base, {**base, "Limit": 3}, {**base, "Limit": 2, "ScanIndexForward": False},
                            {**base, "Limit": 4, "FilterExpression": "v > :v",
                             "ExpressionAttributeValues": {":h": {hash_type: h}, ":v": {"N": "12"}}},
                            {**base, "ProjectionExpression": "h, v", "Limit": 5}, {**base, "Select": "COUNT"}]
                if range_type == "N":
                    between = {":h": {hash_type: h}, ":a": {"N": "3"}, ":b": {"N": "15"}}
                    queries.append({**base, "KeyConditionExpression": "h = :h AND r BETWEEN :a AND :b", "Limit": 2,
                                    "ExpressionAttributeValues": between})
                if range_type == "S":
                    queries.append({**base, "KeyConditionExpression": "h = :h AND begins_with(r, :p)",
                                    "ExpressionAttributeValues": {":h": {hash_type: h}, ":p": {"S": "k1"}}})
            queries.append({"TableName": name, "IndexName": "by-g", "KeyConditionExpression": "g = :g",
                            "ExpressionAttributeValues": {":g": {"S": "g1"}}, "Limit": 4})
            for query in queries:
                pages, start = [], None
                while True:
                    page = ddb.query(**query, **({"ExclusiveStartKey": start} if start else {}))
                    page.pop("ResponseMetadata", None)
                    pages.append(page)
                    start = page.get("LastEvaluatedKey")
                    if not start:
                        break
                out.append((name, json.dumps(query, sort_keys=True), pages))
            scanned = ddb.scan(TableName=name, Limit=7)
            scanned.pop("ResponseMetadata", None)
            out.append((name, "scan", scanned))
    return out


def test_patched_queries_read_only_their_hash_key_and_answer_as_moto(aws_env: None) -> None:
    # GIVEN every page moto gives queries and scans over tables with string and number keys
    assert not moto_patches.installed()
    unpatched_pages = query_pages()
    # WHEN the same calls run with the patches (a query reads the items of its hash key only)
    patched_pages = with_patches(query_pages)
    # THEN every page is the same: items, order, counts and LastEvaluatedKey
    assert patched_pages == unpatched_pages
    assert sum(len(pages) > 1 for _, _, pages in patched_pages if isinstance(pages, list)) > 20


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


UPDATE_EXPRESSIONS = ("SET #a = :a, b = :b ADD n :one", "SET a.b[1] = if_not_exists(c, :c) REMOVE #d",
                      "ADD s :s DELETE t :t", "SET x = list_append(#l, :l), y = y + :one")


def test_patched_clauses_of_a_shared_tree_are_the_walked_ones(recorder: Recorder) -> None:
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        ExpressionAttributeName,
        ExpressionAttributeValue,
        Node,
    )
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    original = moto_patches._MISSING
    for owner, name, value in moto_patches._installed.originals:  # type: ignore[union-attr]
        if owner is Node and name == "find_clauses":
            original = value
    assert callable(original)
    # GIVEN shared (cached) trees  WHEN their names and values are looked up, twice
    for text in UPDATE_EXPRESSIONS:
        tree = UpdateExpressionParser.make(text)
        for kinds in ([ExpressionAttributeName], [ExpressionAttributeValue],
                      [ExpressionAttributeName, ExpressionAttributeValue]):
            first, second = tree.find_clauses(kinds), tree.find_clauses(kinds)
            # THEN each lookup finds what moto's walk finds, in a list of its own
            assert first == second == original(tree, kinds)
            assert first is not second
    # AND a tree that is not shared is walked as before
    fresh = UpdateExpressionParser.make.__func__(type("Other", (UpdateExpressionParser,), {}), "SET a = :a")
    assert [c.get_value_name() for c in fresh.find_clauses([ExpressionAttributeValue])] == [":a"]


def processing_map_builds(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(validations, processing-map builds) of one update_item with a three-action expression."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    ddb = session.client("dynamodb")
    make_table(ddb)
    builds: list[None] = []
    validations: list[None] = []
    original_map = validators.ExecuteOperations._processing_map
    original_validate = validators.UpdateExpressionValidator.validate

    def counting_map(self: DepthFirstTraverser) -> Any:
        builds.append(None)
        return original_map(self)

    def counting_validate(self: Any) -> Any:
        validations.append(None)
        return original_validate(self)

    monkeypatch.setattr(validators.ExecuteOperations, "_processing_map", counting_map)
    monkeypatch.setattr(validators.UpdateExpressionValidator, "validate", counting_validate)
    # (if_not_exists reads the item: the expression is validated anew at each call)
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}},
                    UpdateExpression="SET a = :a, b = if_not_exists(b, :b) ADD n :one",
                    ExpressionAttributeValues={":a": {"S": "a"}, ":b": {"S": "b"}, ":one": {"N": "1"}})
    assert get(ddb, "x") == {"pk": {"S": "x"}, "a": {"S": "a"}, "b": {"S": "b"}, "n": {"N": "1"}}
    return len(validations), len(builds)


def test_unpatched_validation_rebuilds_its_table_at_every_node(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    validations, builds = processing_map_builds(session, monkeypatch)
    assert builds > 10 * validations


def test_patched_validation_builds_its_table_once_per_check(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    validations, builds = processing_map_builds(session, monkeypatch)
    assert builds == validations


def test_patched_a_flat_update_is_validated_once_per_names(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an expression that only sets top-level attributes to values and adds to one
    from moto.dynamodb.parsing import validators

    ddb = session.client("dynamodb")
    make_table(ddb)
    builds: list[None] = []
    original_map = validators.ExecuteOperations._processing_map

    def counting_map(self: Any) -> Any:
        builds.append(None)
        return original_map(self)

    monkeypatch.setattr(validators.ExecuteOperations, "_processing_map", counting_map)
    for key in ("x", "y", "z"):
        ddb.put_item(TableName="t", Item={"pk": {"S": key}, "n": {"N": "5"}})
    # WHEN three items are updated with it, the same names and values
    for key in ("x", "y", "z"):
        ddb.update_item(TableName="t", Key={"pk": {"S": key}}, UpdateExpression="SET a = :a ADD n :one",
                        ExpressionAttributeValues={":a": {"S": "a"}, ":one": {"N": "1"}})
    # THEN it was validated (walked) once, and each item got its own update
    assert len(builds) == 1
    assert [get(ddb, key) for key in ("x", "y", "z")] == [
        {"pk": {"S": key}, "a": {"S": "a"}, "n": {"N": "6"}} for key in ("x", "y", "z")]
    # AND other values fill the kept tree, and change only their own item
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET a = :a ADD n :one",
                    ExpressionAttributeValues={":a": {"S": "b"}, ":one": {"N": "2"}})
    assert len(builds) == 1
    assert get(ddb, "x") == {"pk": {"S": "x"}, "a": {"S": "b"}, "n": {"N": "8"}}
    assert get(ddb, "y")["a"] == {"S": "a"}
    # AND a value missing from a later call is refused as moto refuses it
    with pytest.raises(ClientError, match="An expression attribute value used in expression is not defined"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET a = :a ADD n :one",
                        ExpressionAttributeValues={":a": {"S": "c"}})


def flat_updates() -> list[Any]:
    """Flat updates (top-level SET to values, ADD) repeated with values of every kind, in a fresh
    moto: each call's ALL_NEW attributes, or its error, and the items at the end."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        make_table(ddb)
        expression = "SET #s = :s, #m = :m, l = :l, ss = :ss ADD n :one, tags :tag"
        for round_, pk in enumerate(("x", "y", "x", "z", "y")):
            values = {":s": {"S": f"s{round_}"}, ":one": {"N": str(round_ + 1)}, ":tag": {"SS": [f"t{round_}"]},
                      ":m": {"M": {"k": {"L": [{"N": str(round_)}, {"M": {"d": {"S": "deep"}}}]}}},
                      ":l": {"L": [{"S": "a"}, {"BOOL": round_ % 2 == 0}, {"NULL": True}]},
                      ":ss": {"SS": ["p", f"q{round_}"]}}
            try:
                out.append(ddb.update_item(TableName="t", Key={"pk": {"S": pk}}, UpdateExpression=expression,
                                           ExpressionAttributeNames={"#s": "state", "#m": "map"},
                                           ExpressionAttributeValues=values, ReturnValues="ALL_NEW")["Attributes"])
            except ClientError as exc:
                out.append(exc.response["Error"])
        # the same expression with a value of another type where ADD needs a number: moto's error
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression=expression,
                            ExpressionAttributeNames={"#s": "state", "#m": "map"},
                            ExpressionAttributeValues={":s": {"S": "s"}, ":one": {"S": "one"}, ":tag": {"SS": ["t"]},
                                                       ":m": {"M": {}}, ":l": {"L": []}, ":ss": {"SS": ["p"]}})
        except ClientError as exc:
            out.append(exc.response["Error"])
        out.append(sorted(ddb.scan(TableName="t")["Items"], key=lambda item: item["pk"]["S"]))
    return out


def test_patched_flat_updates_answer_as_moto(aws_env: None) -> None:
    # GIVEN what moto answers to flat updates repeated with values of every kind
    assert not moto_patches.installed()
    unpatched_answers = flat_updates()
    # WHEN the same calls run with the patches (the validated tree kept, rebuilt with each call's values)
    patched_answers = with_patches(flat_updates)
    # THEN every answer, error and item is the same
    assert patched_answers == unpatched_answers
    assert patched_answers[2]["n"] == {"N": "4"}  # x: 1 + 3


def test_patched_jsonpath_reads_copy_only_what_can_change(recorder: Recorder) -> None:
    from moto.stepfunctions.parser.asl.eval.states import States

    data = {"detail": {"requestId": "r-1", "request": {"caseId": "7"}, "n": 3}}
    # strings and numbers are returned as they are (they cannot change) ...
    assert States._extract("$.detail.requestId", data) == "r-1"
    assert States._extract("$.detail.n", data) == 3
    # ... objects are still copies, so a state changing its input cannot reach back
    request = States._extract("$.detail.request", data)
    assert request == {"caseId": "7"} and request is not data["detail"]["request"]
    whole = States._extract(None, data)
    assert whole == data and whole["detail"] is not data["detail"]


# -- 11. DynamoDB items are not tracked -------------------------------------------------------
def items_tracked_by_updates(session: boto3.session.Session) -> int:
    """How many DynamoDB items moto's instance tracker gained over 20 updates of one item."""
    ddb = session.client("dynamodb")
    make_table(ddb)
    before = len(Item.instances_tracked)
    for _ in range(20):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
    assert get(ddb, "x") == {"pk": {"S": "x"}, "n": {"N": "20"}}
    return len(Item.instances_tracked) - before


def test_unpatched_every_item_copy_is_kept(unpatched: None, session: boto3.session.Session) -> None:
    assert items_tracked_by_updates(session) >= 20


def test_patched_item_copies_are_not_kept(recorder: Recorder, session: boto3.session.Session) -> None:
    assert items_tracked_by_updates(session) == 0
    # AND items are still what moto makes: copies are equal, independent items
    import copy as copying

    original = Item(hash_key=None, range_key=None, attrs={"pk": {"S": "y"}, "n": {"N": "1"}})
    clone = copying.deepcopy(original)
    assert isinstance(clone, Item) and clone == original and clone.attrs is not original.attrs


def test_patched_projection_of_top_level_attributes_equals_moto_s(recorder: Recorder,
                                                                  session: boto3.session.Session) -> None:
    # GIVEN an item of every kind of attribute
    ddb = session.client("dynamodb")
    make_table(ddb)
    item = {"pk": {"S": "x"}, "s": {"S": "text"}, "n": {"N": "1.50"}, "m": {"M": {"a": {"N": "1"}, "b": {"S": "y"}}},
            "l": {"L": [{"S": "a"}, {"N": "2"}]}, "ss": {"SS": ["p", "q"]}, "t": {"BOOL": True}}
    ddb.put_item(TableName="t", Item=item)
    # WHEN top-level attributes are projected  THEN the answer is moto's own, attribute for attribute
    picked = ddb.get_item(TableName="t", Key={"pk": {"S": "x"}}, ProjectionExpression="s, n, m, l, ss, t, absent")
    assert picked["Item"] == {k: v for k, v in item.items() if k != "pk"}
    # AND a nested path still goes moto's way
    nested = ddb.get_item(TableName="t", Key={"pk": {"S": "x"}}, ProjectionExpression="m.b, l[1]")
    assert nested["Item"] == {"m": {"M": {"b": {"S": "y"}}}, "l": {"L": [{"N": "2"}]}}


def test_patched_item_size_limit_holds_as_moto_s(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN an item of 300 KB in 30 attributes (the size is kept, not recounted at each attribute)
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "x"}, **{f"a{i}": {"S": "v" * 10_000} for i in range(30)}})
    # WHEN updates bring it near, then over, DynamoDB's 400 KB (moto: 405,000 bytes)
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET b = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 90_000}})
    with pytest.raises(ClientError, match="Item size to update has exceeded the maximum allowed size"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET c = :v",
                        ExpressionAttributeValues={":v": {"S": "v" * 20_000}})
    # THEN the item is as it was before the refused update
    assert set(get(ddb, "x")) == {"pk", "b", *(f"a{i}" for i in range(30))}
    # AND replacing an attribute counts the old value's size out
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET b = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 5}})
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET c = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 20_000}})


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


# -- 13. JSON values are copied as JSON -------------------------------------------------------
def test_json_deepcopy_copies_json_values_like_deepcopy() -> None:
    import copy as copying

    value = {"a": [1, 2.5, {"b": None, "c": True}], "d": "text", "e": {"f": []}}
    clone = moto_patches.json_deepcopy(value)
    assert clone == copying.deepcopy(value) == value
    assert clone is not value and clone["a"] is not value["a"] and clone["a"][2] is not value["a"][2]
    clone["a"][2]["b"] = "changed"
    assert value["a"][2]["b"] is None
    assert moto_patches.json_deepcopy("s") == "s" and moto_patches.json_deepcopy(None) is None


def test_json_deepcopy_leaves_anything_else_to_deepcopy() -> None:
    import collections
    import decimal

    shared = [1]
    for value in ({"n": decimal.Decimal("1.5")}, collections.OrderedDict(a=[1]), {"t": (shared, shared)},
                  [object()]):
        clone = moto_patches.json_deepcopy(value)
        assert type(clone) is type(value) and clone is not value
    # a structure with a non-JSON part is copied whole by deepcopy, shared references kept
    clone = moto_patches.json_deepcopy({"t": (shared, shared)})
    assert clone["t"][0] is clone["t"][1] and clone["t"][0] is not shared
    # and a memo (deepcopy calling back) goes to deepcopy too
    memo: dict[int, Any] = {}
    assert moto_patches.json_deepcopy([shared, shared], memo)[0] is memo[id(shared)]


def test_unpatched_engines_copy_with_the_copy_module(unpatched: None) -> None:
    import copy as copying
    import importlib

    for name in moto_patches.JSON_COPYING_MODULES:
        assert importlib.import_module(name).copy is copying, name


def test_patched_engines_copy_json_values_as_json(recorder: Recorder) -> None:
    import importlib

    for name in moto_patches.JSON_COPYING_MODULES:
        module = importlib.import_module(name)
        assert module.copy.deepcopy is moto_patches.json_deepcopy, name
    from moto.stepfunctions.parser.asl.eval import states

    data = {"detail": {"request": {"caseId": "7"}}}
    assert states.copy.deepcopy(data) == data and states.copy.deepcopy(data)["detail"] is not data["detail"]


# -- 9 (continued). Update validation ---------------------------------------------------------
def update_tour(session: boto3.session.Session) -> list[Any]:
    """Items and errors after a tour of update expressions, in a fresh table."""
    ddb = session.client("dynamodb")
    make_table(ddb)
    out: list[Any] = []
    updates: list[tuple[str, dict[str, Any], dict[str, str] | None]] = [
        ("SET a = :s, m = :m, l = :l, n = :one", {":s": {"S": "a"}, ":m": {"M": {"x": {"N": "1"}}},
                                                  ":l": {"L": [{"S": "p"}]}, ":one": {"N": "1"}}, None),
        ("SET #n = #n + :one, m.x = m.x - :one", {":one": {"N": "1"}}, {"#n": "n"}),
        ("SET l = list_append(l, :more), b = if_not_exists(b, :s)", {":more": {"L": [{"S": "q"}]},
                                                                     ":s": {"S": "b"}}, None),
        ("ADD ss :ss, n :one", {":ss": {"SS": ["u", "v"]}, ":one": {"N": "1"}}, None),
        ("DELETE ss :u REMOVE l[0], b", {":u": {"SS": ["u"]}}, None),
        ("SET #n = #n + :one", {":one": {"N": "1"}}, {"#n": "n"}),  # the same text again
        ("SET a = :s, a = :t", {":s": {"S": "1"}, ":t": {"S": "2"}}, None),  # two updates of one path
        ("SET a = :s, a = :t", {":s": {"S": "1"}, ":t": {"S": "2"}}, None),  # ... refused every time
        ("ADD n :one ADD n :one", {":one": {"N": "1"}}, None),  # two ADD clauses
        ("SET pk = :s", {":s": {"S": "other"}}, None),  # a key attribute
        ("ADD a :one", {":one": {"N": "1"}}, None),  # a number added to a string
        ("SET #missing.deep = :s", {":s": {"S": "x"}}, {"#missing": "nothing"}),
    ]
    for expression, values, names in updates:
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": values}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression=expression, **kwargs)
            out.append(get(ddb, "x"))
        except ClientError as error:
            out.append((error.response["Error"]["Code"], error.response["Error"]["Message"]))
    return out


def test_patched_update_expressions_give_the_items_and_errors_moto_gives(aws_env: None) -> None:
    with mock_aws():
        unpatched_tour = update_tour(boto3.session.Session(region_name=REGION))
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        with mock_aws():
            patched_tour = update_tour(boto3.session.Session(region_name=REGION))
    finally:
        moto_patches.uninstall()
    assert patched_tour == unpatched_tour
    assert patched_tour[5]["n"] == {"N": "4"} and patched_tour[4]["l"] == {"L": [{"S": "q"}]}
    assert [entry[0] for entry in patched_tour[6:]] == ["ValidationException"] * 6


def expression_checks(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch,
                      names: list[str], table: str = "t") -> int:
    """How often ActionCountValidator walks a tree over updates naming `names` in turn."""
    from moto.dynamodb.parsing import validators

    walks: list[None] = []
    original = validators.ActionCountValidator._processing_map

    def counting(self: Any) -> Any:
        walks.append(None)
        return original(self)

    monkeypatch.setattr(validators.ActionCountValidator, "_processing_map", counting)
    ddb = session.client("dynamodb")
    make_table(ddb, table)
    for name in names:
        ddb.update_item(TableName=table, Key={"pk": {"S": "x"}}, UpdateExpression="ADD #c :one",
                        ExpressionAttributeNames={"#c": name}, ExpressionAttributeValues={":one": {"N": "1"}})
    return len(walks)


def test_unpatched_expression_checks_run_on_every_update(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    assert expression_checks(session, monkeypatch, ["a", "a", "a"]) >= 3


def test_patched_expression_checks_run_once_per_expression_and_names(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN one update checked  WHEN the same expression and names come again, on any table
    # with the same key names  THEN the checks do not run again; new names are checked
    assert expression_checks(session, monkeypatch, ["a"]) >= 1
    assert expression_checks(session, monkeypatch, ["a", "a"], table="t2") == 0
    assert expression_checks(session, monkeypatch, ["b"], table="t3") >= 1
    ddb = session.client("dynamodb")
    assert get(ddb, "x", table="t2") == {"pk": {"S": "x"}, "a": {"N": "2"}}


def test_patched_parse_tree_copy_is_the_tree(recorder: Recorder) -> None:
    import copy as copying

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    def shape(node: Any) -> Any:
        if not isinstance(node, Node):
            return node
        return (type(node).__name__, [shape(child) for child in node.children or []])

    def parents_ok(node: Any) -> bool:
        return all(child.parent is node and parents_ok(child)
                   for child in node.children or [] if isinstance(child, Node))

    tree = UpdateExpressionParser.make("SET a = if_not_exists(a, :z) + :one, l[2].x = :s REMOVE b ADD n :one")
    clone = validators.deepcopy(tree)
    assert shape(clone) == shape(copying.deepcopy(tree)) == shape(tree)
    assert parents_ok(clone) and clone.parent is None and clone.children[0] is not tree.children[0]


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


# -- 14. Histories of older succeeded executions are dropped ---------------------------------
FAIL_ON_REQUEST = json.dumps({"StartAt": "Check", "States": {
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Fail"}],
              "Default": "Done"},
    "Fail": {"Type": "Fail", "Error": "Asked", "Cause": "the input asked to fail"},
    "Done": {"Type": "Pass", "End": True},
}})


def run_executions(session: boto3.session.Session, inputs: list[dict[str, Any]]) -> tuple[Any, list[str]]:
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="kept", definition=FAIL_ON_REQUEST, roleArn=ROLE_ARN)["stateMachineArn"]
    arns = []
    for n, payload in enumerate(inputs):
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{n}",
                                  input=json.dumps({"fail": False, **payload}))["executionArn"]
        wait_for_execution(sfn, arn)
        arns.append(arn)
    return sfn, arns


def test_unpatched_every_execution_keeps_its_history(unpatched: None, session: boto3.session.Session) -> None:
    sfn, arns = run_executions(session, [{"n": n} for n in range(5)])
    assert all(sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED" for arn in arns)
    assert all(sfn.get_execution_history(executionArn=arn)["events"] for arn in arns)


def test_patched_only_the_latest_succeeded_executions_keep_their_history(session: boto3.session.Session) -> None:
    # GIVEN the patches keeping 2 histories, and a failed execution among 5 succeeded ones
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver, kept_histories=2)
    try:
        sfn, arns = run_executions(session, [{"n": 0}, {"fail": True}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}])
        # THEN the 2 latest succeeded executions and the failed one keep their history
        for arn in (arns[1], arns[4], arns[5]):
            events = sfn.get_execution_history(executionArn=arn)["events"]
            assert events[0]["type"] == "ExecutionStarted"
            assert events[-1]["type"] in ("ExecutionSucceeded", "ExecutionFailed")
        # AND the older succeeded ones say why theirs is gone, and keep status and output
        for arn in (arns[0], arns[2], arns[3]):
            with pytest.raises(ClientError) as dropped:
                sfn.get_execution_history(executionArn=arn)
            assert dropped.value.response["Error"]["Code"] == "ExecutionHistoryDropped"
            assert "last 2 succeeded executions" in dropped.value.response["Error"]["Message"]
            described = sfn.describe_execution(executionArn=arn)
            assert described["status"] == "SUCCEEDED" and json.loads(described["output"])["n"] in (0, 2, 3)
        assert sfn.describe_execution(executionArn=arns[1])["status"] == "FAILED"
    finally:
        moto_patches.uninstall()


def test_kept_histories_cannot_be_negative() -> None:
    rec = Recorder()
    with pytest.raises(ValueError, match="0 or more"):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver, kept_histories=-1)
    assert not moto_patches.installed()


# -- 15. Executions started by a delivery run in its thread -----------------------------------
WAIT_DEFINITION = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}})


def start_waiting_execution(session: boto3.session.Session, name: str) -> tuple[Any, float]:
    """(the execution, seconds StartExecution took) for a machine that waits 1 s."""
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"wait-{name}", definition=WAIT_DEFINITION,
                                       roleArn=ROLE_ARN)["stateMachineArn"]
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    started = time.monotonic()
    execution = backend.start_execution(machine, name=name, execution_input="{}")
    return execution, time.monotonic() - started


def test_unpatched_start_execution_returns_while_it_runs(unpatched: None, session: boto3.session.Session) -> None:
    execution, seconds = start_waiting_execution(session, "async")
    assert seconds < 0.5 and execution.exec_status == "RUNNING"
    wait_for_execution(session.client("stepfunctions"), execution.exec_arn)


def test_patched_executions_started_inline_run_before_start_returns(recorder: Recorder,
                                                                    session: boto3.session.Session) -> None:
    # GIVEN the patches, outside the block  THEN executions still run in threads of their own
    execution, seconds = start_waiting_execution(session, "outside")
    assert seconds < 0.5 and execution.exec_status == "RUNNING"
    # WHEN an execution is started inside executions_inline()
    threads = threading.active_count()
    with moto_patches.executions_inline():
        inline, seconds = start_waiting_execution(session, "inside")
        # THEN it has run to its end, in this thread, when StartExecution returns
        assert seconds >= 1.0 and inline.exec_status == "SUCCEEDED"
        assert threading.active_count() <= threads
    events = session.client("stepfunctions").get_execution_history(executionArn=inline.exec_arn)["events"]
    assert [e["type"] for e in events][-1] == "ExecutionSucceeded"
    # AND the block ends with itself: the next start is asynchronous again
    after, seconds = start_waiting_execution(session, "after")
    assert seconds < 0.5 and after.exec_status == "RUNNING"
    wait_for_execution(session.client("stepfunctions"), execution.exec_arn)
    wait_for_execution(session.client("stepfunctions"), after.exec_arn)


# -- 16. A Wait until a timestamp ends at the timestamp -----------------------------------------
# AWS: "An absolute time to wait until beginning the state specified in the Next field ...
# Step Functions considers the time value up to seconds and truncates milliseconds."
# https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html
WAIT_UNTIL_DEFINITION = json.dumps({"StartAt": "W", "States": {
    "W": {"Type": "Wait", "TimestampPath": "$.until", "End": True}}})


@pytest.fixture
def local_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Sets the process's local time zone (a POSIX TZ string: no tz database needed)."""
    def use(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def wait_until_a_whole_second(session: boto3.session.Session) -> tuple[float, float]:
    """Run a Wait until the whole second 1.4-1.8 s ahead, given with milliseconds that AWS
    ignores; returns (that second as epoch seconds, when the execution was seen finished)."""
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"wait-until-{uuid.uuid4().hex[:8]}", definition=WAIT_UNTIL_DEFINITION,
                                       roleArn=ROLE_ARN)["stateMachineArn"]
    while not 0.2 <= time.time() % 1 <= 0.5:  # so that the time left is never whole seconds
        time.sleep(0.01)
    until = float(int(time.time()) + 2)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(until)) + ".999Z"
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"until": stamp}))["executionArn"]
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        assert time.time() < until + 10, "the Wait did not end"
        time.sleep(0.01)
    assert status == "SUCCEEDED"
    return until, time.time()


def test_unpatched_wait_until_a_timestamp_ends_early(unpatched: None, session: boto3.session.Session,
                                                     local_time_zone: Any) -> None:
    # GIVEN moto without the patches, on a machine whose local time is UTC
    local_time_zone("UTC0")
    # WHEN a Wait waits until a timestamp 1.4-1.8 s ahead
    until, finished = wait_until_a_whole_second(session)
    # THEN it ends 0.4-0.8 s before it: the time left was rounded down to a whole second
    assert finished < until - 0.3


def test_patched_wait_until_a_timestamp_ends_at_it(recorder: Recorder, session: boto3.session.Session,
                                                   local_time_zone: Any) -> None:
    # GIVEN the patches, on a machine whose local time is five hours behind UTC
    local_time_zone("XYZ+5")
    # WHEN a Wait waits until a timestamp 1.4-1.8 s ahead, given with milliseconds
    until, finished = wait_until_a_whole_second(session)
    # THEN it ends at that timestamp's second, as on AWS: not before, and not later than polling takes
    assert until <= finished < until + 0.5


def sdk_parameters() -> list[dict[str, Any]]:
    """The parameters moto's AWS SDK integration passes to boto3 for two tasks, as Step Functions
    takes them (PascalCase: docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html)."""
    from types import SimpleNamespace

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    out = []
    for api_name, action, parameters in (
            ("sfn", "stopExecution", {"ExecutionArn": "arn:aws:states:us-east-1:1:execution:m:e", "Cause": "c"}),
            ("cloudwatch", "putMetricData", {"Namespace": "Fanflow", "MetricData": [{"MetricName": "m", "Value": 1}]})):
        task = StateTaskServiceAwsSdk()
        task.resource = SimpleNamespace(api_name=api_name, api_action=action)  # type: ignore[assignment]
        task._normalise_parameters(parameters)
        out.append(parameters)
    return out


def test_unpatched_sdk_integrations_pass_step_functions_parameter_names_to_boto3_as_written() -> None:
    # GIVEN moto's own AWS SDK integration  WHEN it prepares StopExecution's parameters
    assert not moto_patches.installed()
    stop, metric = sdk_parameters()
    # THEN they stay PascalCase, which boto3's StopExecution (executionArn) does not take
    assert set(stop) == {"ExecutionArn", "Cause"}
    assert set(metric) == {"Namespace", "MetricData"}


def test_patched_sdk_integrations_map_parameters_to_the_api_s_members() -> None:
    # WHEN the same tasks are prepared with the patches (adaptation 26)
    stop, metric = with_patches(sdk_parameters)
    # THEN StopExecution gets its own member names; an API whose members are PascalCase is unchanged
    assert stop == {"executionArn": "arn:aws:states:us-east-1:1:execution:m:e", "cause": "c"}
    assert metric == {"Namespace": "Fanflow", "MetricData": [{"MetricName": "m", "Value": 1}]}
