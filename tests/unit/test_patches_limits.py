"""Adaptation 27 (local/moto_patches/limits.py), pinned against moto 5.2.5: where AWS's limits
act on the embedded engine, the states an execution enters and every API call a botocore client
makes. `test_unpatched_*` pins what moto does without it; `test_patched_*` checks what the
limits (local/aws_limits/enforce.py) rely on."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from local import moto_patches
from tests.patch_helpers import REGION, ROLE_ARN, Recorder, make_table, wait_for_execution

THREE_STATES = json.dumps({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Pass", "End": True}}})


def test_unpatched_states_run_back_to_back_and_no_hook_sees_them(unpatched: None,
                                                                 session: boto3.session.Session) -> None:
    # GIVEN moto without the patches and a Standard state machine of three Pass states
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="m", definition=THREE_STATES, roleArn=ROLE_ARN)
    # WHEN it runs
    started = time.monotonic()
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    described = wait_for_execution(sfn, execution)
    # THEN it succeeds with its three states in its history, and nothing slowed it: moto has no
    # state-transition latency or quota (service-quotas.html gives Standard workflows both)
    assert described["status"] == "SUCCEEDED"
    entered = [e for e in sfn.get_execution_history(executionArn=execution)["events"]
               if e["type"] == "PassStateEntered"]
    assert len(entered) == 3
    assert time.monotonic() - started < 2.0


def _with_limit_hooks(run: Any) -> tuple[Any, list[Any], list[Any]]:
    from moto import mock_aws

    states: list[bool] = []
    calls: list[tuple[str, str, Any, Any]] = []
    hooks = moto_patches.EngineHooks(
        on_state_entered=states.append,
        before_api_call=lambda service, op, params, context: calls.append(("before", service, op, (params, context))),
        after_api_call=lambda service, op, context: calls.append(("after", service, op, context)),
    )
    rec = Recorder()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver, hooks=hooks)
        try:
            return run(boto3.session.Session(region_name=REGION)), states, calls
        finally:
            moto_patches.uninstall()


def test_patched_each_state_entered_is_announced_with_its_workflow_type(aws_env: None) -> None:
    # GIVEN the patches with the limit hooks, a Standard and an Express machine of three states
    def run(session: boto3.session.Session) -> list[str]:
        sfn = session.client("stepfunctions")
        standard = sfn.create_state_machine(name="s", definition=THREE_STATES, roleArn=ROLE_ARN)
        express = sfn.create_state_machine(name="e", definition=THREE_STATES, roleArn=ROLE_ARN, type="EXPRESS")
        # WHEN each runs once
        statuses = [wait_for_execution(sfn, sfn.start_execution(stateMachineArn=standard["stateMachineArn"])[
            "executionArn"])["status"]]
        statuses.append(sfn.start_sync_execution(stateMachineArn=express["stateMachineArn"])["status"])
        return statuses

    statuses, states, _ = _with_limit_hooks(run)
    # THEN both succeed, and the hook heard three states of a Standard workflow, then three of an
    # Express one
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]
    assert states == [True, True, True, False, False, False]


def test_patched_every_api_call_is_seen_before_and_after_with_one_context(aws_env: None) -> None:
    # GIVEN the patches with the limit hooks and a table
    def run(session: boto3.session.Session) -> dict[str, Any]:
        ddb = session.client("dynamodb")
        make_table(ddb)
        # WHEN an item is put (a call moto answers in-process, adaptation 12)
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
        return ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]

    item, _, calls = _with_limit_hooks(run)
    # THEN it was written, and the hooks saw the PutItem before (with its parameters, not yet
    # serialised) and after, sharing botocore's per-call context
    assert item == {"pk": {"S": "a"}}
    put = [call for call in calls if call[2] == "PutItem"]
    assert [(when, service) for when, service, _, _ in put] == [("before", "dynamodb"), ("after", "dynamodb")]
    params, context = put[0][3]
    assert params == {"TableName": "t", "Item": {"pk": {"S": "a"}}}
    assert put[1][3] is context
    # AND the uninstalled patches leave no handler behind
    assert not moto_patches.installed()
    assert boto3.DEFAULT_SESSION is None or not any(
        "fanflow-aws-limits" in str(h) for h in getattr(boto3.DEFAULT_SESSION.events, "_unique_id_handlers", {}))
