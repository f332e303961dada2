"""What the tests of local/moto_patches share: a Recorder that stands in for the runtime,
the fixtures (aws_env, unpatched, recorder, session, hooked), and helpers that build moto
resources and install the patches around a call."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction

from local import moto_patches

REGION = "us-east-1"
ACCOUNT = "123456789012"
EXECUTING = {"stepfunctions": {"execute_state_machine": True}}
LAMBDA_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:target-fn"
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


# -- the patches around a call ----------------------------------------------------------------
T = TypeVar("T")


def with_patches(run: Callable[[], T]) -> T:
    """`run`'s result with the patches installed (and uninstalled after), to compare with moto's own."""
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        return run()
    finally:
        moto_patches.uninstall()


# -- DynamoDB tables --------------------------------------------------------------------------
def make_table(ddb: Any, name: str = "t") -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


def get(ddb: Any, pk: str, table: str = "t") -> dict[str, Any] | None:
    return ddb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")


@pytest.fixture
def hooked(aws_env: None) -> Any:
    """Patches installed with every engine hook recording what it is handed."""
    from moto import mock_aws

    seen: dict[str, list[Any]] = {"async": [], "mappings": [], "executions": [], "writes": []}
    conflict: dict[str, int | None] = {"index": None}
    rec = Recorder()
    hooks = moto_patches.EngineHooks(
        invoke_async=lambda fn, event: seen["async"].append((fn.function_name, event)),
        on_event_source_mapping=seen["mappings"].append,
        on_execution=lambda arn, data: seen["executions"].append((arn, json.loads(data))),
        on_dynamodb_write=lambda table, key: seen["writes"].append((table, key)),
        transaction_fault=lambda items: conflict["index"],
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver, hooks=hooks)
        try:
            yield boto3.session.Session(region_name=REGION), rec, seen, conflict
        finally:
            moto_patches.uninstall()
