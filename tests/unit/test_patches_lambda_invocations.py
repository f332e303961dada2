"""Adaptations 2 and 18 (local/moto_patches/lambda_invocations.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import json
from typing import Any

import boto3
import docker
import docker.errors
import pytest
from moto.awslambda.models import LambdaFunction

from tests.patch_helpers import ROLE_ARN, Recorder, create_function, wait_for_execution


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


# -- 18. Event invocations are asynchronous -------------------------------------------------
def test_patched_without_the_hook_an_event_invocation_runs_before_the_answer(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN moto's own behaviour (no invoke_async hook)  WHEN a function is invoked with type Event
    create_function(session)
    response = session.client("lambda").invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"a": 1}')
    # THEN it has already run when the 202 comes back
    assert response["StatusCode"] == 202
    assert [event for _, event in recorder.invocations] == [{"a": 1}]


def test_patched_an_event_invocation_is_queued_and_answered_at_once(hooked: Any) -> None:
    # Lambda developer guide, "Invoking a Lambda function asynchronously": Lambda places the
    # event in a queue and returns a success response (202) without waiting for the function.
    aws, rec, seen, _ = hooked
    create_function(aws)
    response = aws.client("lambda").invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"a": 1}')
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert rec.invocations == []  # not run here
    assert seen["async"] == [("fn", {"a": 1})]  # handed to the runtime, which runs it later
    # AND a RequestResponse invocation still runs at once
    aws.client("lambda").invoke(FunctionName="fn", Payload=b'{"b": 2}')
    assert [event for _, event in rec.invocations] == [{"b": 2}]
