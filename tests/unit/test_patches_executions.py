"""Adaptations 3, 14, 16, 19 and 26 (local/moto_patches/executions.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import moto_patches
from tests.patch_helpers import (
    ACCOUNT,
    PASS_DEFINITION,
    REGION,
    ROLE_ARN,
    Recorder,
    create_stack,
    wait_for_execution,
    with_patches,
)


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


# -- 26. AWS SDK integrations' parameter names ------------------------------------------------
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


# -- 19. Express workflows and StartSyncExecution ---------------------------------------------
def express_template(definition: dict[str, Any]) -> dict[str, Any]:
    return {"Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": "batch", "StateMachineType": "EXPRESS", "RoleArn": ROLE_ARN,
        "DefinitionString": json.dumps(definition)}}}


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"counted": 2}, "End": True}}}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}


def test_unpatched_express_is_lost_by_cloudformation_and_sync_start_is_missing(
        unpatched: None, session: boto3.session.Session) -> None:
    import moto.stepfunctions.models as sfn_models

    # GIVEN moto without the patches  WHEN a stack creates an Express state machine THEN it is STANDARD
    outputs = create_stack(session, express_template(PASS), {"Arn": {"Value": {"Ref": "Machine"}}})
    assert sfn_models.stepfunctions_backends[ACCOUNT][REGION].describe_state_machine(outputs["Arn"]).type == "STANDARD"
    # AND StartSyncExecution is not implemented, even for an Express machine made through the API
    sfn = session.client("stepfunctions")
    arn = sfn.create_state_machine(name="e", definition=json.dumps(PASS), roleArn=ROLE_ARN,
                                   type="EXPRESS")["stateMachineArn"]
    with pytest.raises(ClientError, match="Not yet implemented"):
        sfn.start_sync_execution(stateMachineArn=arn, input="{}")


def test_patched_a_sync_express_execution_answers_with_its_result(hooked: Any) -> None:
    # Step Functions API reference, StartSyncExecution: the response holds executionArn,
    # stateMachineArn, name, startDate, stopDate, status (SUCCEEDED | FAILED | TIMED_OUT),
    # input, output (when it succeeded), error and cause (when it failed), billingDetails.
    aws, _, seen, _ = hooked
    outputs = create_stack(aws, {**express_template(PASS)}, {"Arn": {"Value": {"Ref": "Machine"}}})
    sfn = aws.client("stepfunctions")
    assert sfn.describe_state_machine(stateMachineArn=outputs["Arn"])["type"] == "EXPRESS"
    response = sfn.start_sync_execution(stateMachineArn=outputs["Arn"], name="b-1", input='{"completions": []}')
    assert response["status"] == "SUCCEEDED"
    assert json.loads(response["output"]) == {"counted": 2}
    assert response["executionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:express:batch:b-1:")
    assert response["stateMachineArn"] == outputs["Arn"] and response["name"] == "b-1"
    assert response["stopDate"] >= response["startDate"]
    assert response["billingDetails"]["billedDurationInMilliseconds"] >= 100
    assert seen["executions"] == [(outputs["Arn"], {"completions": []})]


def test_patched_a_failed_sync_execution_says_why(hooked: Any) -> None:
    aws, _, _, _ = hooked
    outputs = create_stack(aws, express_template(FAIL), {"Arn": {"Value": {"Ref": "Machine"}}})
    response = aws.client("stepfunctions").start_sync_execution(stateMachineArn=outputs["Arn"], input="{}")
    assert (response["status"], response["error"], response["cause"]) == ("FAILED", "Boom", "it broke")
    assert "output" not in response


def test_patched_a_standard_workflow_cannot_be_started_synchronously(hooked: Any) -> None:
    aws, _, _, _ = hooked
    sfn = aws.client("stepfunctions")
    arn = sfn.create_state_machine(name="std", definition=json.dumps(PASS), roleArn=ROLE_ARN)["stateMachineArn"]
    with pytest.raises(ClientError) as caught:
        sfn.start_sync_execution(stateMachineArn=arn, input="{}")
    assert caught.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"
