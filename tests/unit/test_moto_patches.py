"""Every adaptation in local/moto_patches.py, pinned against moto 5.2.5.

For each adaptation there are two kinds of test:
- `test_unpatched_*` pins what moto does WITHOUT the patches. If a moto upgrade changes that
  behaviour, the test fails: the patch may have become unnecessary or may now fight moto.
- `test_patched_*` checks that, with the patches installed, the behaviour is the one the
  embedded runtime relies on.
"""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import docker
import docker.errors
import jsonpath_ng.ext
import moto
import moto.stepfunctions.models as sfn_models
import moto.stepfunctions.parser.asl.utils.boto_client as boto_client
import moto.stepfunctions.parser.asl.utils.json_path as json_path
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventBus, Rule
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

from local import moto_patches

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


# -- fixtures -------------------------------------------------------------------------------
@dataclass
class Recorder:
    """Stands in for the runtime: records what moto hands the callbacks."""

    invocations: list[tuple[LambdaFunction, Any]] = field(default_factory=list)
    deliveries: list[tuple[dict[str, Any], Any, dict[str, Any]]] = field(default_factory=list)
    result: Any = field(default_factory=lambda: {"handled": True})
    errored: bool = False

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        self.invocations.append((fn, event))
        return json.dumps(self.result), self.errored, "handler log line"

    def deliver(self, target: dict[str, Any], payload: Any, event: dict[str, Any]) -> None:
        self.deliveries.append((target, payload, event))


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
    for owner, name, original in recorded:
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


def test_patched_rule_delivers_lambda_and_state_machine_targets_and_keeps_sqs(
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
    # THEN the Lambda and state machine targets go to `deliver`, with their rendered input
    by_target = {target["Id"]: (payload, event) for target, payload, event in recorder.deliveries}
    assert set(by_target) == {"fn", "sm"}
    assert by_target["fn"][0] == {"requestId": "req-1", "n": 3}
    whole, event = by_target["sm"]
    assert whole["detail"] == {"requestId": "req-1", "n": 3}
    assert whole["source"] == "fanflow.test" and whole["detail-type"] == "Test"
    assert "ingestion-time" not in whole
    assert time.strptime(whole["time"], "%Y-%m-%dT%H:%M:%SZ")
    # AND `deliver` also gets the event itself
    assert event["detail"] == {"requestId": "req-1", "n": 3} and event["id"] == whole["id"]
    # AND the SQS target still gets the event through moto's own path
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
    assert cached.__module__ == moto_patches.__name__
    for name in ENGINE_CLIENT_MODULES:
        assert sys.modules[name].boto_client_for is cached, name
    # AND it returns one client per (region, service)
    assert cached(REGION, "lambda") is cached(REGION, "lambda")
    assert cached(REGION, "lambda") is not cached(REGION, "sqs")
    assert cached(REGION, "lambda") is not cached("eu-west-1", "lambda")
