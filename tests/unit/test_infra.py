"""The synthesized CloudFormation of the fanflow stack: the workflows' ASL, the event
routing, least-privilege IAM, storage settings, cdk-nag and cfn-lint. No AWS, no network:
the stack is built in-process once per module."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.app import build_app
from infra.components.concurrency import DEFAULT_COMPUTE_CONCURRENCY, DEFAULT_ORCHESTRATION_CONCURRENCY
from infra.components.storage import RequestStore
from infra.components.summary import grant_summary
from infra.nag import apply_nag
from lambda_fns import constants as c
from tests.cfn import (
    Synthesized,
    allows,
    arn,
    as_list,
    caught_by,
    definition,
    logical_id,
    ref,
    references,
    role_actions,
    role_of,
    role_statements,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_WITHOUT_ACCOUNT = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
FUNCTION = "AWS::Lambda::Function"
TABLE = "AWS::DynamoDB::Table"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"  # optimized DynamoDB integrations


# ---------------------------------------------------------------------------- helpers


def counted_then(states: dict[str, Any], name: str) -> str:
    """A rejection first counts itself (RequestsRejected), then fails; the count never changes that."""
    count = states[name]
    assert count["Resource"].endswith(":states:::aws-sdk:cloudwatch:putMetricData")
    assert count["Parameters"]["MetricData"][0]["MetricName"] == c.METRIC_REQUESTS_REJECTED
    assert caught_by(count, "States.ALL") == count["Next"]
    return str(count["Next"])


def lambda_transients_retried(task: dict[str, Any]) -> bool:
    """Whether a Lambda task retries Lambda's throttling and transient service errors, with jitter
    (docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html)."""
    retries = {error: retry for retry in task.get("Retry", []) for error in retry["ErrorEquals"]}
    needed = ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
              "Lambda.SdkClientException", "Lambda.ClientExecutionTimeoutException"]
    return all(error in retries and retries[error]["MaxAttempts"] >= 3
               and retries[error].get("JitterStrategy") == "FULL" for error in needed)


def dynamodb_transients_retried(task: dict[str, Any]) -> bool:
    """Whether a DynamoDB task retries its transient failures but never a failed condition."""
    retries = task.get("Retry", [])
    return (len(retries) == 2 and retries[0] == {"ErrorEquals": [CONDITION_FAILED], "MaxAttempts": 0}
            and retries[1]["ErrorEquals"] == ["States.TaskFailed"] and retries[1]["MaxAttempts"] >= 3)


def all_states(machine: dict[str, Any]) -> list[dict[str, Any]]:
    """Every state of a definition, those of its Map item processors included."""
    found = []
    for state in machine["States"].values():
        found.append(state)
        if "ItemProcessor" in state:
            found.extend(all_states(state["ItemProcessor"]))
    return found


def rule_by_source(template: Template, source: str) -> dict[str, Any]:
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
             if r["Properties"]["EventPattern"].get("source") == [source]]
    assert len(rules) == 1, f"expected one rule for source {source!r}, found {len(rules)}"
    return rules[0]


def required_env(module: str) -> set[str]:
    """The variables a handler reads at cold start: the names it passes to require_env."""
    tree = ast.parse((Path(c.__file__).parent / f"{module}.py").read_text())
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "require_env"]
    assert len(calls) == 1, f"lambda_fns/{module}.py should call require_env once"
    names = calls[0].args[0]
    assert isinstance(names, ast.List)
    return {getattr(c, element.attr) for element in names.elts if isinstance(element, ast.Attribute)}


def nag_findings(messages: list[Any]) -> str:
    return "\n".join(f"{m.id}: {m.entry.data}" for m in messages)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def preprocess(template: Template) -> dict[str, Any]:
    return definition(template, "PreProcess")


@pytest.fixture(scope="module")
def increment(template: Template) -> dict[str, Any]:
    return definition(template, "Increment")


@pytest.fixture(scope="module")
def ids(template: Template) -> dict[str, str]:
    """Logical ids of the resources the assertions talk about."""
    return {
        "counter": logical_id(template, TABLE, "CounterTable"),
        "results": logical_id(template, TABLE, "ResultsTable"),
        "bucket": logical_id(template, "AWS::S3::Bucket", "ArtifactsBucket"),
        "bus": logical_id(template, "AWS::Events::EventBus", "Bus"),
        "queue": logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue"),
        "compute": logical_id(template, FUNCTION, "ComputeFunction"),
        "compute_large": logical_id(template, FUNCTION, "ComputeLargeFunction"),
        "step": logical_id(template, FUNCTION, "ComputeWorkflowStepFunction"),
        "work_queue": logical_id(template, "AWS::SQS::Queue", "ComputeQueueWorkQueue"),
        "worker_policy": logical_id(template, "AWS::IAM::ManagedPolicy", "WorkerPolicy"),
        "summary": logical_id(template, FUNCTION, "SummaryFunction"),
        "prepare": logical_id(template, FUNCTION, "PrepareFunction"),
        "emit": logical_id(template, FUNCTION, "EmitFunction"),
        "preprocess": logical_id(template, STATE_MACHINE, "PreProcess"),
        "increment": logical_id(template, STATE_MACHINE, "Increment"),
        "cancel": logical_id(template, STATE_MACHINE, "Cancel"),
        "lifecycle": logical_id(template, FUNCTION, "LifecycleFunction"),
        "count": logical_id(template, FUNCTION, "CountFunction"),
        "consumer": logical_id(template, FUNCTION, "ConsumerFunction"),
        "completion_queue": logical_id(template, "AWS::SQS::Queue", "CompletionQueue"),
        "completion_dlq": logical_id(template, "AWS::SQS::Queue", "CompletionDeadLetters"),
    }


# ---------------------------------------------------------------------------- PreProcess (fan-out)


def test_preprocess_prepares_then_opens_the_request_once(preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN it starts with a request (not a redrive) THEN Prepare validates it, and a RequestError
    # ends it as InvalidRequest
    start = states[preprocess["StartAt"]]
    assert start["Type"] == "Choice" and start["Default"] == "Prepare"
    assert [(rule["Variable"], rule["IsPresent"]) for rule in start["Choices"]] == [("$.redrive", True)]
    prepare = states["Prepare"]
    assert prepare["Resource"].endswith(":states:::lambda:invoke")
    assert prepare["Parameters"]["FunctionName"] == arn(ids["prepare"])
    rejected = states[counted_then(states, caught_by(prepare, "RequestError"))]
    assert rejected["Type"] == "Fail"
    assert rejected["Error"] == "InvalidRequest"
    # (Prepare is retried when Lambda throttles it, or fails to run it)
    assert lambda_transients_retried(prepare)
    # AND THEN OpenRequest writes the counter row only if it does not exist yet
    assert prepare["Next"] == "OpenRequest"
    open_request = states["OpenRequest"]
    assert open_request["Resource"].endswith(":states:::dynamodb:putItem")
    params = open_request["Parameters"]
    assert params["TableName"] == ref(ids["counter"])
    assert params["ConditionExpression"] == "attribute_not_exists(#requestId)"
    assert params["ExpressionAttributeNames"] == {"#requestId": c.ATTR_REQUEST_ID}
    exists = states[counted_then(states, caught_by(open_request, CONDITION_FAILED))]
    assert exists["Type"] == "Fail"
    assert exists["Error"] == "RequestAlreadyExists"
    # AND a transient error of the write is retried, a failed condition is not
    assert dynamodb_transients_retried(open_request)
    # AND the new row starts at zero, RUNNING, with the planned target
    item = params["Item"]
    assert item[c.ATTR_REQUEST_ID] == {"S.$": "$.requestId"}
    assert item[c.ATTR_COUNTER] == {"N": "0"}
    assert item[c.ATTR_SUCCEEDED] == {"N": "0"}
    assert item[c.ATTR_FAILED] == {"N": "0"}
    assert item[c.ATTR_STATUS] == {"S": c.STATUS_RUNNING}
    assert item[c.ATTR_EXPECTED] == {"N.$": "$.target"}
    assert item[c.ATTR_EXPIRES_AT] == {"N.$": "$.expiresAt"}
    # AND attempt 1, with what a cancel stops (this execution) and a redrive reads (the chunks)
    assert (item[c.ATTR_ATTEMPT], item[c.ATTR_EXECUTION_ARN]) == ({"N": "1"}, {"S.$": "$$.Execution.Id"})
    assert (item[c.ATTR_CHUNK_PREFIX], item[c.ATTR_CHUNK_CASES]) == ({"S.$": "$.chunkPrefix"}, {"N.$": "$.chunkCases"})


def test_a_redrive_is_a_preprocess_execution_that_fans_out_the_next_attempt(
        preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    start = states[preprocess["StartAt"]]
    # WHEN its input is {"redrive": ...} THEN the Lifecycle function takes the next attempt, with
    # this execution's ARN (a retried run resumes its own redrive), and the same fan-out follows
    redrive = states[start["Choices"][0]["Next"]]
    assert redrive["Resource"].endswith(":states:::lambda:invoke")
    assert redrive["Parameters"]["FunctionName"] == arn(ids["lifecycle"])
    assert redrive["Parameters"]["Payload"] == {"action": "redrive", "redrive.$": "$.redrive",
                                                "executionArn.$": "$$.Execution.Id"}
    assert lambda_transients_retried(redrive)
    assert redrive["Next"] == states["OpenRequest"]["Next"]  # FanOut
    # AND a redrive that cannot be done ends the execution as RedriveRefused, counted as a rejection
    refused = states[counted_then(states, caught_by(redrive, "RedriveRefused"))]
    assert (refused["Type"], refused["Error"]) == ("Fail", "RedriveRefused")


def test_the_cancel_workflow_claims_stops_the_attempt_and_summarizes(template: Template) -> None:
    # GIVEN the Cancel workflow's definition
    cancel = definition(template, "Cancel")
    states = cancel["States"]
    # WHEN it starts THEN the Lifecycle function claims the request; unknown or not running ends it FAILED
    claim = states[cancel["StartAt"]]
    assert claim["Parameters"]["Payload"] == {"action": "cancel", "requestId.$": "$.requestId"}
    assert {caught_by(claim, error) for error in ("RequestNotFound", "RequestNotRunning")} == {
        "RequestNotFound", "RequestNotRunning"}
    assert states["RequestNotRunning"]["Type"] == "Fail"
    # AND it stops the PreProcess execution the row names (an ended one does not stop the cancel)
    named = states[claim["Next"]]
    stop = states[named["Default"]]
    assert stop["Resource"].endswith(":states:::aws-sdk:sfn:stopExecution")
    assert stop["Parameters"]["ExecutionArn.$"] == "$.cancel.executionArn"
    # AND then Summary closes it, as cancelled
    summarize = states[stop["Next"]]
    assert summarize["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "reason": c.REASON_CANCELLED}
    assert caught_by(stop, "States.ALL") == stop["Next"]


def test_preprocess_fans_out_each_chunk_in_a_child_execution_of_a_distributed_map(
        preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN the request is open THEN FanOut is a Distributed Map over the chunk numbers Prepare planned
    # (the cases stay in S3: no state carries them), each chunk a Standard child execution of its own
    # (PreProcess's history holds the Map Run's events, not the chunks'), at most N at a time (the
    # PutEvents rate), with no Catch of its own: one chunk's failure does not stop the others
    assert states["OpenRequest"]["Next"] == "FanOut"
    fan_out = states["FanOut"]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert fan_out["Label"] == "FanOutChunks"
    assert fan_out["ItemsPath"] == "$.chunks"
    assert fan_out["MaxConcurrency"] == c.FANOUT_MAX_CONCURRENCY
    assert "Catch" not in fan_out
    selector = fan_out["ItemSelector"]
    assert selector["chunk.$"] == "$$.Map.Item.Value"
    assert {key: selector[key] for key in ("chunkPrefix.$", "shards.$", "deadline.$", "expiresAt.$")} == {
        "chunkPrefix.$": "$.chunkPrefix", "shards.$": "$.shards", "deadline.$": "$.deadline",
        "expiresAt.$": "$.expiresAt"}
    assert (selector["attempt"], selector["pending"], selector["registered.$"], selector["requestAttempt.$"]) == (
        0, [], "$.registered", "$.requestAttempt")
    # AND each child invokes EmitChunk with its attempt, and Step Functions' retry count (a crashed
    # invocation may have registered part of the chunk)
    processor = fan_out["ItemProcessor"]
    batch = processor["States"]
    assert processor["StartAt"] == "EmitChunk"
    emit = batch["EmitChunk"]
    assert emit["Resource"].endswith(":states:::lambda:invoke")
    assert emit["Parameters"]["FunctionName"] == arn(ids["emit"])
    assert emit["Parameters"]["Payload"]["retryCount.$"] == "$$.State.RetryCount"
    assert emit["Parameters"]["Payload"]["attempt.$"] == "$.attempt"
    assert lambda_transients_retried(emit)
    # AND the cases not yet accepted are emitted again, alone, after the backoff Emit chose (seconds, jittered)
    pending = batch[emit["Next"]]
    [resume] = [rule for rule in pending["Choices"] if rule.get("Variable") == "$.remaining"]
    assert resume["NumericGreaterThan"] == 0
    backoff = batch[resume["Next"]]
    assert (backoff["Type"], backoff["SecondsPath"], backoff["Next"]) == ("Wait", "$.waitSeconds", "EmitChunk")
    # AND a chunk ends EMITTED, or LOST when cases were given up; one whose loss closed the request
    # runs Summary first
    outcome = batch[pending["Default"]]
    by_variable = {rule["Variable"]: rule["Next"] for rule in outcome["Choices"]}
    assert batch[outcome["Default"]]["Result"] == "EMITTED"
    assert batch[by_variable["$.lost"]]["Result"] == "LOST"
    summarize = batch[by_variable["$.claimed"]]
    assert summarize["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "reason": c.REASON_FAN_OUT_FAILED}
    assert batch[summarize["Next"]]["Result"] == "LOST"
    # AND when Emit itself fails for good, the chunk is given up by Emit in abandon mode, and if
    # even that fails, its error is recorded on the counter row: the chunk still ends (LOST)
    abandon = batch[caught_by(emit, "States.ALL")]
    assert abandon["Parameters"]["Payload"]["abandon"] is True
    assert abandon["Parameters"]["FunctionName"] == arn(ids["emit"])
    record = batch[caught_by(abandon, "States.ALL")]
    assert record["Resource"].endswith(":states:::dynamodb:updateItem")
    assert record["Parameters"]["UpdateExpression"] == "SET #error = if_not_exists(#error, :error)"
    assert batch[record["Next"]]["Result"] == "LOST"
    # AND after the Map, whether any batch was lost is kept for the end of the execution
    keep = states[fan_out["Next"]]
    assert keep["Parameters"]["fanOutFailed.$"] == "States.ArrayContains($.fanOut, 'LOST')"
    assert fan_out["ResultPath"] == "$.fanOut"


def s3_grants(template: Template, role: str) -> set[tuple[str, str]]:
    """(action, object ARN pattern as rendered) for every S3 grant of the role."""
    from infra.nag import _rendered

    return {(action, _rendered(resource)) for s in role_statements(template, role)
            for action in as_list(s["Action"]) if action.startswith("s3:") for resource in as_list(s["Resource"])}


def test_prepare_and_emit_reach_only_their_prefixes_of_the_artifacts_bucket(
        template: Template, ids: dict[str, str]) -> None:
    bucket = f"<{ids['bucket']}.Arn>"
    # GIVEN Prepare's role  THEN it reads requests (GetObject only: it lists nothing) and writes
    # manifests and chunks, each under its prefix
    prepare = s3_grants(template, role_of(template, ids["prepare"]))
    assert ("s3:GetObject", f"{bucket}/{c.REQUESTS_PREFIX}*") in prepare
    assert {("s3:PutObject", f"{bucket}/{c.MANIFESTS_PREFIX}*"),
            ("s3:PutObject", f"{bucket}/{c.CHUNKS_PREFIX}*")} <= prepare
    assert {resource for _, resource in prepare} == {f"{bucket}/{prefix}*" for prefix in (
        c.REQUESTS_PREFIX, c.MANIFESTS_PREFIX, c.CHUNKS_PREFIX)}
    assert not any(action.startswith(("s3:List", "s3:GetBucket", "s3:Delete")) for action, _ in prepare)
    # AND Emit reads its chunks, and nothing else of the bucket
    assert s3_grants(template, role_of(template, ids["emit"])) == {("s3:GetObject", f"{bucket}/{c.CHUNKS_PREFIX}*")}


def test_the_distributed_map_may_start_and_manage_only_preprocess_s_own_children(template: Template) -> None:
    # GIVEN PreProcess's role  THEN it may start executions of PreProcess itself (a Distributed Map's
    # children are executions of the parent's state machine), and describe, stop or redrive only those
    preprocess = logical_id(template, STATE_MACHINE, "PreProcess")
    statements = role_statements(template, role_of(template, preprocess))
    [start] = [s for s in statements if "states:StartExecution" in as_list(s["Action"])]
    assert as_list(start["Resource"]) == [{"Ref": preprocess}]
    managed = [s for s in statements
               if {"states:DescribeExecution", "states:StopExecution"} & set(as_list(s["Action"]))]
    assert managed and all(references(r, preprocess) for s in managed for r in as_list(s["Resource"]))


@pytest.mark.parametrize(("context", "concurrency", "buckets"), [
    ({}, c.FANOUT_MAX_CONCURRENCY, []),
    ({"fanOutConcurrency": "25", "requestBuckets": "team-requests, other.bucket"}, 25,
     ["team-requests", "other.bucket"]),
])
def test_fan_out_concurrency_and_request_buckets_come_from_the_context(
        monkeypatch: pytest.MonkeyPatch, context: dict[str, str], concurrency: int, buckets: list[str]) -> None:
    for name in ENV_WITHOUT_ACCOUNT:
        monkeypatch.delenv(name, raising=False)
    app = build_app(context=context)
    stack = app.node.find_child(c.STACK_NAME)
    assert isinstance(stack, Stack)
    template = Template.from_stack(stack)
    # THEN the Distributed Map runs that many chunks at once, and Prepare's shard rule knows it
    fan_out = definition(template, "PreProcess")["States"]["FanOut"]
    assert fan_out["MaxConcurrency"] == concurrency
    prepare_id = logical_id(template, FUNCTION, "PrepareFunction")
    env = template.to_json()["Resources"][prepare_id]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_FANOUT_CONCURRENCY] == str(concurrency) and env[c.ENV_CHUNK_CASES] == str(c.FANOUT_CHUNK_CASES)
    # AND Prepare may read requests (GetObject only) from each bucket named, any key
    granted = {resource for action, resource in s3_grants(template, role_of(template, prepare_id))
               if action == "s3:GetObject" and ":s3:::" in resource}
    assert granted == {f"arn:<AWS::Partition>:s3:::{bucket}/*" for bucket in buckets}
    # AND cdk-nag accepts those grants (each wildcard suppressed with its reason, nothing else)
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not errors, nag_findings(errors)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("fanOutConcurrency", "0", "-c fanOutConcurrency must be 1 to 1000, got 0"),
    ("fanOutConcurrency", "x", "-c fanOutConcurrency must be a whole number, got 'x'"),
])
def test_a_bad_fan_out_context_value_is_refused_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        build_app(context={name: value})


def test_preprocess_ends_failed_after_a_lost_chunk(preprocess: dict[str, Any]) -> None:
    # GIVEN the end of PreProcess  THEN a request whose fan-out lost a chunk ends it FanOutFailed (alarmed)
    ended = preprocess["States"]["FanOutFailed?"]
    [rule] = ended["Choices"]
    assert (rule["Variable"], rule["BooleanEquals"]) == ("$.fanOutFailed", True)
    assert preprocess["States"][rule["Next"]] == {
        "Type": "Fail", "Error": "FanOutFailed",
        "Cause": "a fan-out chunk was lost: the request's summary says which cases and why"}
    assert preprocess["States"][ended["Default"]]["Type"] == "Succeed"


def test_preprocess_claims_an_open_request_at_its_deadline(preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN the cases are emitted THEN it takes the first claim slot Prepare planned and waits for it (the deadline)
    assert states["KeepRequestRef"]["Next"] == "NextClaimSlot"
    slot = states["NextClaimSlot"]
    assert slot["Parameters"]["slot.$"] == "States.ArrayGetItem($.claimSlots, $.claim.attempt)"
    wait = states[slot["Next"]]
    assert (wait["Type"], wait["TimestampPath"]) == ("Wait", "$.claim.slot.atIso")
    # AND it claims the request if it is open, or if it is SUMMARIZING under a stale claim only, and
    # records when (the slot's time: a lower bound of now)
    claim = states[wait["Next"]]
    params = claim["Parameters"]
    assert claim["Resource"].endswith(":states:::dynamodb:updateItem")
    assert params["TableName"] == ref(ids["counter"])
    assert params["UpdateExpression"] == "SET #status = :summarizing, #claimedAt = :at"
    assert params["ConditionExpression"] == ("#status = :running OR (#status = :summarizing AND "
                                             "(attribute_not_exists(#claimedAt) OR #claimedAt < :staleBefore))")
    assert params["ExpressionAttributeNames"]["#claimedAt"] == c.ATTR_CLAIMED_AT
    assert params["ExpressionAttributeValues"][":at"] == {"N.$": "$.claim.slot.at"}
    assert params["ExpressionAttributeValues"][":staleBefore"] == {"N.$": "$.claim.slot.staleBefore"}
    assert dynamodb_transients_retried(claim)
    # AND a claimed request is summarized as timed out; a Summary that fails goes back to waiting
    summarize = states[claim["Next"]]
    assert summarize["Parameters"]["FunctionName"] == arn(ids["summary"])
    assert summarize["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "reason": c.REASON_TIMED_OUT}
    assert lambda_transients_retried(summarize)
    assert caught_by(summarize, "States.ALL") == "CountClaimAttempt"
    # AND when the claim is refused, it reads the request's status: a fresh claim (or a race) waits for
    # the next slot, a closed request whose completion was not published gets Summary, else it ends
    read = states[caught_by(claim, CONDITION_FAILED)]
    assert read["Resource"].endswith(":states:::dynamodb:getItem") and read["Parameters"]["ConsistentRead"] is True
    held = states[read["Next"]]
    nexts = [rule["Next"] for rule in held["Choices"]]
    assert states[nexts[0]]["Error"] == "CounterRowMissing"
    assert nexts[1] == "CountClaimAttempt"
    assert held["Choices"][2]["Not"] == {"Variable": f"$.row.Item.{c.ATTR_PUBLISHED_AT}", "IsPresent": True}
    assert states[nexts[2]]["Parameters"]["FunctionName"] == arn(ids["summary"])
    assert held["Default"] == "FanOutFailed?"
    # AND the waiting is bounded: after the last slot, the execution fails visibly
    advance = states["CountClaimAttempt"]
    assert advance["Parameters"]["attempt.$"] == "States.MathAdd($.claim.attempt, 1)"
    left = states[advance["Next"]]
    [more] = left["Choices"]
    assert (more["NumericLessThan"], more["Next"]) == (c.CLAIM_ATTEMPTS, "NextClaimSlot")
    assert states[left["Default"]]["Error"] == "ClaimAttemptsExhausted"


def test_every_lambda_task_retries_throttling_and_lambda_s_transient_errors(
        preprocess: dict[str, Any], template: Template) -> None:
    # GIVEN every Lambda task of PreProcess (its Map's included) and of the compute workflow
    # (Increment is the fan-in's, which builds its tasks with functions.lambda_task)
    workflow = definition(template, "ComputeWorkflow")
    tasks = [state for machine in (preprocess, workflow) for state in all_states(machine)
             if state.get("Resource", "").endswith(":states:::lambda:invoke")]
    assert len(tasks) >= 6
    # THEN each retries Lambda's throttling and documented transient errors, with jitter
    for task in tasks:
        assert lambda_transients_retried(task), task



# ---------------------------------------------------------------------------- workflows
# The batched fan-in (queue, event source mapping, Increment's definition): tests/unit/test_fan_in_infra.py


@pytest.mark.parametrize(("fragment", "kind", "level"), [("PreProcess", "STANDARD", "ALL"),
                                                         ("Increment", "EXPRESS", "ERROR"),
                                                         ("ComputeWorkflow", "STANDARD", "ERROR")])
def test_state_machines_are_traced_and_logged(template: Template, fragment: str, kind: str, level: str) -> None:
    # GIVEN a workflow WHEN it is synthesized THEN it has X-Ray and logging: every event of the one
    # execution per request, the errors only of the per-case and per-batch ones
    props = template.to_json()["Resources"][logical_id(template, STATE_MACHINE, fragment)]["Properties"]
    assert props["StateMachineType"] == kind
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == level
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert props["LoggingConfiguration"]["Destinations"], "execution logs need a log group"


# ---------------------------------------------------------------------------- routing


def test_case_events_are_routed_to_the_compute_function(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule for fan-out events that the Compute function receives (the default compute
    # target; tests/unit/test_compute_targets_infra.py covers the others)
    [rule] = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
              if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [ids["compute"], "Arn"]}]
    # WHEN a case event arrives THEN it matches on source and detail-type and goes to compute,
    # unless its case names another compute target
    assert rule["EventPattern"]["source"] == [c.PREPROCESS_SOURCE]
    assert rule["EventPattern"]["detail-type"] == [c.CASE_DETAIL_TYPE]
    others = [t for t in c.COMPUTE_TYPES if t != c.DEFAULT_COMPUTE_TYPE]
    assert rule["EventPattern"]["detail"] == {"request": {"$or": [
        {c.ATTR_COMPUTE_TYPE: [{"exists": False}]}, {c.ATTR_COMPUTE_TYPE: [{"anything-but": others}]}]}}
    assert references(rule["EventBusName"], ids["bus"])
    [target] = rule["Targets"]
    # AND undeliverable events are retried, then dead-lettered, and delivered whole
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == c.RULE_TARGET_RETRY_ATTEMPTS
    assert "Input" not in target


def test_completion_events_go_whole_to_the_fan_in_buffer(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule for completion events
    rule = rule_by_source(template, c.COMPUTE_SOURCE)
    assert references(rule["EventBusName"], ids["bus"])
    # WHEN a completion arrives THEN it goes to the completion queue, retried and dead-lettered as
    # every rule target is
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ids["completion_queue"], "Arn"]}
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": c.RULE_TARGET_RETRY_ATTEMPTS,
                                     "MaximumEventAgeInSeconds": c.RULE_TARGET_MAX_EVENT_AGE_SECONDS}
    # AND the message body is the whole event: the consumer reads the case and its state from it
    for rewriting in ("InputPath", "InputTransformer", "Input"):
        assert rewriting not in target, f"the completion target must not set {rewriting}"


def test_compute_failures_after_retries_reach_the_fan_in_buffer(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the compute function's asynchronous invoke configuration
    [props] = [config["Properties"] for config in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
               if config["Properties"]["FunctionName"] == {"Ref": ids["compute"]}]
    # WHEN an invocation still fails after its retries THEN the failure record goes to the bus
    assert props["MaximumRetryAttempts"] == c.COMPUTE_ASYNC_RETRIES
    assert references(props["DestinationConfig"]["OnFailure"]["Destination"], ids["bus"])
    # AND a rule matches those records by the qualified ARN they name (`...:$LATEST`), for the
    # compute functions only
    rule = rule_by_source(template, c.LAMBDA_DESTINATION_SOURCE)
    assert rule["EventPattern"]["detail-type"] == [c.LAMBDA_FAILURE_DETAIL_TYPE]
    assert rule["EventPattern"]["resources"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [ids[f], "Arn"]}, ":$LATEST"]]} for f in ("compute", "compute_large")]
    # AND sends each record whole to the fan-in buffer, where it counts as a FAILED case (whatever
    # the record holds: a record of an event that expired has no responsePayload)
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ids["completion_queue"], "Arn"]}
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert "InputTransformer" not in target and "Input" not in target


# ---------------------------------------------------------------------------- IAM


def test_increment_role_may_count_claim_and_summarize(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role the Increment state machine runs as
    role = role_of(template, ids["increment"])
    # WHEN it counts a batch THEN it may invoke CountBatch; it claims a request on the counter row
    assert allows(template, role, "lambda:InvokeFunction", ids["count"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND it may start Summary
    assert allows(template, role, "lambda:InvokeFunction", ids["summary"])
    # AND nothing else: the counting itself is CountBatch's
    assert not allows(template, role, "dynamodb:UpdateItem", ids["results"])
    assert not any(fnmatchcase("dynamodb:DeleteItem", action) for action in role_actions(template, role))


def test_preprocess_role_may_open_and_close_requests(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role the PreProcess state machine runs as
    role = role_of(template, ids["preprocess"])
    # WHEN it opens and times out a request THEN it may put and update the counter row
    assert allows(template, role, "dynamodb:PutItem", ids["counter"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND it may invoke the functions it orchestrates
    for function in ("prepare", "emit", "summary"):
        assert allows(template, role, "lambda:InvokeFunction", ids[function]), function
    # AND it has no business with the results table
    assert not allows(template, role, "dynamodb:*", ids["results"])


def test_summary_role_may_read_results_and_close_the_request(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role of the summary function
    role = role_of(template, ids["summary"])
    # WHEN it aggregates a request THEN it may query results and read and close the counter row
    assert allows(template, role, "dynamodb:Query", ids["results"])
    assert allows(template, role, "dynamodb:GetItem", ids["counter"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND publish the summary object and event
    assert allows(template, role, "s3:PutObject", ids["bucket"])
    assert allows(template, role, "events:PutEvents", ids["bus"])


def put_events_conditions(template: Template, role_id: str) -> list[dict[str, Any]]:
    """The Condition of each PutEvents statement of a role (None where there is none)."""
    return [s.get("Condition") for s in role_statements(template, role_id)
            if "events:PutEvents" in as_list(s["Action"])]


def only(source: str, detail_type: str) -> dict[str, Any]:
    return {"ForAllValues:StringEquals": {"events:source": [source], "events:detail-type": [detail_type]}}


def test_compute_role_is_least_privilege(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role of each Lambda compute function
    for function in ("compute", "compute_large"):
        role = role_of(template, ids[function])
        # WHEN it reports a case THEN it may put completion events, and the failure records Lambda puts
        # for it through its on-failure destination: nothing else (it cannot forge a fan-out event)
        assert allows(template, role, "events:PutEvents", ids["bus"])
        assert sorted(map(json.dumps, put_events_conditions(template, role))) == sorted(map(json.dumps, [
            only(c.COMPUTE_SOURCE, c.COMPLETION_DETAIL_TYPE),
            only(c.LAMBDA_DESTINATION_SOURCE, c.LAMBDA_FAILURE_DETAIL_TYPE)]))
        # AND it may record a result with UpdateItem of the result's attributes only: no PutItem (which
        # replaces the row), and no access to the counted mark, not even in a condition
        [update] = [s for s in role_statements(template, role) if "dynamodb:UpdateItem" in as_list(s["Action"])]
        attributes = update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
        assert {c.ATTR_REQUEST_SHARD, c.ATTR_CASE_ID, c.ATTR_STATE} <= set(attributes)
        assert c.ATTR_OUTCOME not in attributes and c.ATTR_OUTCOME_ERROR not in attributes
        assert update["Condition"]["StringEqualsIfExists"]["dynamodb:ReturnValues"] == [
            "NONE", "UPDATED_OLD", "UPDATED_NEW"]
        assert allows(template, role, "dynamodb:GetItem", ids["results"])
        # AND nothing broader: no puts, no deletes, no dynamodb:*, no access to the counter table
        actions = role_actions(template, role)
        assert "dynamodb:*" not in actions
        assert not any(fnmatchcase(action, pattern) for action in actions
                       for pattern in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"))
        assert not allows(template, role, "dynamodb:UpdateItem", ids["counter"])
        assert not allows(template, role, "dynamodb:PutItem", ids["counter"])


def test_emit_role_may_register_and_emit_fan_out_events_only(template: Template, ids: dict[str, str]) -> None:
    # GIVEN Emit's role
    role = role_of(template, ids["emit"])
    # THEN it may put fan-out events (only), register and give up results rows, and lower the target
    assert put_events_conditions(template, role) == [only(c.PREPROCESS_SOURCE, c.CASE_DETAIL_TYPE)]
    for action in ("dynamodb:BatchWriteItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem"):
        assert allows(template, role, action, ids["results"]), action
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    assert not allows(template, role, "dynamodb:DeleteItem", ids["counter"])


def test_preprocess_role_counts_rejections_in_fanflow_s_namespace_only(template: Template, ids: dict[str, str]) -> None:
    # GIVEN PreProcess's role  THEN its PutMetricData (which accepts no resource) is held to fanflow's namespace
    [metric] = [s for s in role_statements(template, role_of(template, ids["preprocess"]))
                if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert metric["Resource"] == "*"
    assert metric["Condition"] == {"StringEquals": {"cloudwatch:namespace": c.METRICS_NAMESPACE}}


def test_the_summary_grant_reads_objects_only_and_publishes_its_own_events() -> None:
    # GIVEN infra.components.summary.grant_summary, the grant FanInWorkflow's Summary should get
    app = cdk.App()
    stack = cdk.Stack(app, "Grants")
    store = RequestStore(stack, "Store", retention_days=7)
    bus = events.EventBus(stack, "Bus")
    role = iam.Role(stack, "SummaryRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant_summary(role, counter_table=store.counter_table, results_table=store.results_table,
                  artifacts_bucket=store.artifacts_bucket, bus=bus)
    template = Template.from_stack(stack)
    [policy] = template.find_resources("AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {action for s in statements for action in as_list(s["Action"])}
    # THEN S3 access is GetObject of manifests and PutObject of summaries: no s3:List* on the bucket
    assert {a for a in actions if a.startswith("s3:")} == {"s3:GetObject", "s3:PutObject"}
    bucket = logical_id(template, "AWS::S3::Bucket", "ArtifactsBucket")
    s3_resources = [json.dumps(s["Resource"]) for s in statements if as_list(s["Action"])[0].startswith("s3:")]
    assert all(bucket in resource and ("/manifests/*" in resource or "/summaries/*" in resource)
               for resource in s3_resources)
    # AND its PutEvents is held to the request-completed event
    [put] = [s for s in statements if "events:PutEvents" in as_list(s["Action"])]
    assert put["Condition"] == only(c.SUMMARY_SOURCE, c.SUMMARY_DETAIL_TYPE)
    # AND it may not write results rows (their expiry comes from Emit now)
    results = logical_id(template, TABLE, "ResultsTable")
    assert [s["Action"] for s in statements if references(s["Resource"], results)] == ["dynamodb:Query"]


# ---------------------------------------------------------------------------- reserved concurrency


def reserved(template: Template) -> dict[str, int | None]:
    return {lid: fn["Properties"].get("ReservedConcurrentExecutions")
            for lid, fn in template.find_resources(FUNCTION).items()}


def test_compute_has_a_ceiling_and_the_orchestration_a_floor(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the default stack  THEN each compute function is capped, each orchestration function has a floor
    by_function = reserved(template)
    for compute in ("compute", "compute_large", "step"):
        assert by_function[ids[compute]] == DEFAULT_COMPUTE_CONCURRENCY
    assert by_function[ids["prepare"]] == by_function[ids["summary"]] == DEFAULT_ORCHESTRATION_CONCURRENCY
    assert by_function[ids["emit"]] == c.FANOUT_MAX_CONCURRENCY  # one request's Map at full speed
    # AND the whole fits an account of the default 1,000, which keeps 100 unreserved
    assert sum(n for n in by_function.values() if n) <= c.ACCOUNT_LAMBDA_CONCURRENCY - 100
    # AND the default deadline assumes the compute ceiling
    env = template.to_json()["Resources"][ids["prepare"]]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_COMPUTE_CONCURRENCY] == str(DEFAULT_COMPUTE_CONCURRENCY)


def test_reserved_concurrency_is_configured_by_context(tmp_path: Path) -> None:
    # GIVEN -c computeConcurrency=50 -c orchestrationConcurrency=0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        app = build_app(outdir=str(tmp_path),
                        context={"computeConcurrency": "50", "orchestrationConcurrency": "0"})
    stack = app.node.find_child(c.STACK_NAME)
    assert isinstance(stack, Stack)
    template = Template.from_stack(stack)
    by_function = reserved(template)
    compute = logical_id(template, FUNCTION, "ComputeFunction")
    prepare = logical_id(template, FUNCTION, "PrepareFunction")
    # THEN compute is capped at 50, the orchestration functions reserve nothing
    assert by_function[compute] == 50 and by_function[prepare] is None
    assert template.to_json()["Resources"][prepare]["Properties"]["Environment"]["Variables"][
        c.ENV_COMPUTE_CONCURRENCY] == "50"


# ---------------------------------------------------------------------------- storage



@pytest.mark.parametrize("table", ["counter", "results"])
def test_tables_are_encrypted_recoverable_expiring_and_on_demand(
    template: Template, ids: dict[str, str], table: str
) -> None:
    # GIVEN a table WHEN it is synthesized THEN it is encrypted, has PITR and TTL, and is on-demand
    props = template.to_json()["Resources"][ids[table]]["Properties"]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": c.ATTR_EXPIRES_AT, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_table_keys(template: Template, ids: dict[str, str]) -> None:
    # GIVEN both tables THEN the counter is keyed by request, results by the request's shard and case
    # (write sharding: lambda_fns/keys.py)
    resources = template.to_json()["Resources"]
    assert resources[ids["counter"]]["Properties"]["KeySchema"] == [
        {"AttributeName": c.ATTR_REQUEST_ID, "KeyType": "HASH"},
    ]
    assert resources[ids["results"]]["Properties"]["KeySchema"] == [
        {"AttributeName": c.ATTR_REQUEST_SHARD, "KeyType": "HASH"},
        {"AttributeName": c.ATTR_CASE_ID, "KeyType": "RANGE"},
    ]


def test_artifacts_bucket_is_private_encrypted_expiring_and_tls_only(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the artifacts bucket
    props = template.to_json()["Resources"][ids["bucket"]]["Properties"]
    # THEN objects are encrypted, public access is blocked and objects expire
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }
    assert any(rule["Status"] == "Enabled" and rule.get("ExpirationInDays", 0) > 0
               for rule in props["LifecycleConfiguration"]["Rules"])
    # AND its policy denies any request not made over TLS
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": ids["bucket"]},
        "PolicyDocument": Match.object_like({"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])}),
    })


def test_dead_letter_queue_is_encrypted(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule targets' dead-letter queue THEN it is encrypted with SQS-managed keys
    assert template.to_json()["Resources"][ids["queue"]]["Properties"]["SqsManagedSseEnabled"] is True


# ---------------------------------------------------------------------------- functions


def test_functions_run_python_312_with_tracing(template: Template) -> None:
    # GIVEN every Lambda function of the stack THEN each runs Python 3.12 with active X-Ray tracing
    functions = template.find_resources(FUNCTION)
    assert functions
    for lid, function in functions.items():
        assert function["Properties"]["Runtime"] == "python3.12", lid
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, lid


def test_compute_function_keeps_the_seed_environment(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the compute function WHEN it starts THEN it finds the seed's variables and its own
    env = template.to_json()["Resources"][ids["compute"]]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_EVENTBUS_NAME] == {"Ref": ids["bus"]}
    assert env[c.ENV_EVENTBUS_ARN] == {"Fn::GetAtt": [ids["bus"], "Arn"]}
    assert env[c.ENV_EVENTBUS_SOURCE] == c.COMPUTE_SOURCE
    assert env[c.ENV_EVENTBUS_DETAILTYPE] == c.COMPLETION_DETAIL_TYPE
    assert float(env[c.ENV_COMPUTE_SECONDS]) == c.COMPUTE_SECONDS_AWS
    assert env[c.ENV_RESULTS_TABLE] == {"Ref": ids["results"]}


def test_every_function_gets_the_environment_its_handler_requires(template: Template) -> None:
    # GIVEN each function and the variables its handler module passes to require_env
    for lid, function in template.find_resources(FUNCTION).items():
        package, module, _ = function["Properties"]["Handler"].split(".")
        assert package == "lambda_fns", lid
        # WHEN it cold-starts THEN every required variable is set
        provided = set(function["Properties"]["Environment"]["Variables"])
        assert required_env(module) <= provided, f"{lid} lacks {required_env(module) - provided}"


# ---------------------------------------------------------------------------- outputs


def test_outputs_name_every_resource_clients_need(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the stack outputs THEN every documented output exists and points at its resource
    expected = {
        c.OUTPUT_PREPROCESS_ARN: ids["preprocess"],
        c.OUTPUT_INCREMENT_ARN: ids["increment"],
        c.OUTPUT_CANCEL_ARN: ids["cancel"],
        c.OUTPUT_COUNTER_TABLE: ids["counter"],
        c.OUTPUT_RESULTS_TABLE: ids["results"],
        c.OUTPUT_BUS_NAME: ids["bus"],
        c.OUTPUT_ARTIFACTS_BUCKET: ids["bucket"],
        c.OUTPUT_COMPUTE_FUNCTION: ids["compute"],
        c.OUTPUT_SUMMARY_FUNCTION: ids["summary"],
    }
    expected[c.OUTPUT_FAN_IN_CONSUMER] = ids["consumer"]
    attributes = {  # outputs that are an attribute of their resource, not its Ref
        c.OUTPUT_COMPLETION_QUEUE_URL: ids["completion_queue"],
        c.OUTPUT_COMPLETION_DLQ_URL: ids["completion_dlq"],
        c.OUTPUT_RULE_DLQ_URL: ids["queue"],
        c.OUTPUT_WORK_QUEUE_URL: ids["work_queue"],
        c.OUTPUT_WORKER_POLICY_ARN: ids["worker_policy"],
    }
    compute_functions = [ids["compute"], ids["compute_large"], ids["step"]]
    documented = {value for name, value in vars(c).items() if name.startswith("OUTPUT_")}
    assert set(expected) | set(attributes) | {c.OUTPUT_COMPUTE_FUNCTIONS} == documented, \
        "a new OUTPUT_* constant needs an expectation here"
    outputs = template.find_outputs("*")
    for name, lid in {**expected, **attributes}.items():
        assert name in outputs, f"missing output {name}"
        assert references(outputs[name]["Value"], lid), name
    for name, lid in expected.items():
        assert outputs[name]["Value"] == {"Ref": lid}, name
    # AND the compute functions (whose COMPUTE_SECONDS `--compute-seconds` sets) are listed together
    assert outputs[c.OUTPUT_COMPUTE_FUNCTIONS]["Value"] == {"Fn::Join": [",", [{"Ref": f} for f in compute_functions]]}


# ---------------------------------------------------------------------------- compliance


def test_cdk_nag_reports_no_unsuppressed_errors(synthesized: Synthesized) -> None:
    # GIVEN the AwsSolutions checks applied to the stack WHEN it synthesizes THEN no error is left
    errors = synthesized.annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not errors, nag_findings(errors)


def test_cdk_nag_reports_no_unsuppressed_warnings(synthesized: Synthesized) -> None:
    # GIVEN the AwsSolutions checks applied to the stack WHEN it synthesizes THEN no warning is left
    warnings = synthesized.annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not warnings, nag_findings(warnings)


def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    # GIVEN the synthesized template file WHEN cfn-lint checks it THEN it reports no error
    matches = lint_file(synthesized.template_file, config=ManualArgs(regions=["us-east-1"]))
    errors = [m for m in matches if m.rule.severity == "error"]
    assert not errors, "\n".join(str(m) for m in errors)
    # AND the only warnings are W3005 (the redundant DependsOn CDK adds next to a GetAtt of the role)
    unexpected = [m for m in matches if m.rule.severity == "warning" and m.rule.id != "W3005"]
    assert not unexpected, "\n".join(str(m) for m in unexpected)


def test_synthesis_needs_no_credentials(tmp_path: Path) -> None:
    # GIVEN an environment without AWS credentials, profile or instance metadata
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ENV_WITHOUT_ACCOUNT}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        CDK_OUTDIR=str(tmp_path / "cdk.out"),
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    # WHEN the CDK app runs as `cdk synth` would run it
    result = subprocess.run([sys.executable, "infra/app.py"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    # THEN it succeeds and writes the stack template
    assert result.returncode == 0, result.stderr[-4000:]
    template_file = tmp_path / "cdk.out" / f"{c.STACK_NAME}.template.json"
    assert template_file.is_file()
    assert json.loads(template_file.read_text())["Resources"]


def nag_errors_of(stack: Stack) -> list[str]:
    apply_nag(stack)
    return [f"{m.id} {m.entry.data}" for m in Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-IAM5.*"))]


def test_iam_wildcards_are_suppressed_per_policy_for_the_kinds_the_stack_accepts_only() -> None:
    # GIVEN a stack whose function holds X-Ray's '*' (accepted) and a grant of every DynamoDB action on
    # every table (not a kind the stack accepts)
    stack = cdk.Stack(cdk.App(), "Wildcards")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["xray:PutTraceSegments"], resources=["*"]))
    role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:*"], resources=["arn:aws:dynamodb:*:*:table/*"]))
    # WHEN cdk-nag checks it  THEN the new wildcard is reported, not hidden by a stack-wide suppression
    errors = nag_errors_of(stack)
    assert any("Action::dynamodb:*" in error for error in errors), errors
    assert not any("Resource::*]" in error for error in errors), errors


def test_the_stack_suppresses_no_iam_wildcard_stack_wide(synthesized: Synthesized) -> None:
    # GIVEN the stack's own cdk-nag metadata  THEN no IAM5 suppression applies to the stack as a whole
    rules = [rule["id"] for rule in synthesized.stack.template_options.metadata["cdk_nag"]["rules_to_suppress"]]
    assert "AwsSolutions-IAM5" not in rules
    assert "AwsSolutions-L1" in rules  # (the stack-wide list is read here)
