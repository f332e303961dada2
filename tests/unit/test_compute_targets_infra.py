"""The compute targets in the synthesized stack: one rule per computeType, each to its target
(a Lambda function, a Step Functions workflow, an SQS queue); the default rule takes every case
no other target claims, as rendered and as moto's matcher reads it; the workflow's definition,
the queue's settings, the roles; and the registry refusing what it cannot route."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from infra.components.compute_queue import ComputeQueue
from infra.components.compute_targets import BackendKind, ComputeBackend, ComputeBackends
from infra.components.routing import EventRouting
from infra.stack import FanflowStack
from lambda_fns import constants as c
from lambda_fns.request_model import RequestError, parse_request
from tests.cfn import Synthesized, as_list, logical_id, references, rendered_json

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "AWS::Lambda::Function"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
QUEUE = "AWS::SQS::Queue"
RULE = "AWS::Events::Rule"


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, Any]:
    return dict(template.to_json()["Resources"])


@pytest.fixture(scope="module")
def ids(template: Template) -> dict[str, str]:
    return {
        "bus": logical_id(template, "AWS::Events::EventBus", "Bus"),
        "rule_dlq": logical_id(template, QUEUE, "TargetDeadLetterQueue"),
        "results": logical_id(template, "AWS::DynamoDB::Table", "ResultsTable"),
        "completion_queue": logical_id(template, QUEUE, "CompletionQueue"),
        c.COMPUTE_TYPE_LAMBDA: logical_id(template, FUNCTION, "ComputeFunction"),
        c.COMPUTE_TYPE_LAMBDA_LARGE: logical_id(template, FUNCTION, "ComputeLargeFunction"),
        c.COMPUTE_TYPE_WORKFLOW: logical_id(template, STATE_MACHINE, "ComputeWorkflow"),
        c.COMPUTE_TYPE_QUEUE: logical_id(template, QUEUE, "ComputeQueueWorkQueue"),
        "step": logical_id(template, FUNCTION, "ComputeWorkflowStepFunction"),
        "queue_dlq": logical_id(template, QUEUE, "ComputeQueueDeadLetters"),
        "worker_policy": logical_id(template, "AWS::IAM::ManagedPolicy", "WorkerPolicy"),
    }


def case_rules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fan-out rules, by logical id."""
    return {lid: r["Properties"] for lid, r in resources.items()
            if r["Type"] == RULE and r["Properties"]["EventPattern"].get("source") == [c.PREPROCESS_SOURCE]}


def target_arn(kind: str, lid: str) -> dict[str, Any]:
    """How a rule target names its resource: a function's or queue's Arn attribute, a state machine's Ref."""
    return {"Ref": lid} if kind == c.COMPUTE_TYPE_WORKFLOW else {"Fn::GetAtt": [lid, "Arn"]}


def fan_out_event(case: dict[str, Any]) -> dict[str, Any]:
    """A fan-out event as EventBridge matches it."""
    return {"version": "0", "id": "1", "source": c.PREPROCESS_SOURCE, "detail-type": c.CASE_DETAIL_TYPE,
            "account": "123456789012", "region": "us-east-1", "time": "2026-01-01T00:00:00Z", "resources": [],
            "detail": {"requestId": "r", "request": case}}


# ---------------------------------------------------------------------------- registry and rules


def test_the_registered_targets_are_exactly_the_known_compute_types(synthesized: Synthesized) -> None:
    # GIVEN the stack's compute target registry
    registry = synthesized.stack.compute_targets  # type: ignore[attr-defined]
    # THEN each compute type that requests may name has a target, and no other type does
    assert set(registry.targets) == set(c.COMPUTE_TYPES)
    assert registry.default_type == c.DEFAULT_COMPUTE_TYPE
    # AND each kind of target is shown by an example
    kinds = {compute_type: target.kind for compute_type, target in registry.targets.items()}
    assert kinds == {c.COMPUTE_TYPE_LAMBDA: BackendKind.FUNCTION, c.COMPUTE_TYPE_LAMBDA_LARGE: BackendKind.FUNCTION,
                     c.COMPUTE_TYPE_WORKFLOW: BackendKind.WORKFLOW, c.COMPUTE_TYPE_QUEUE: BackendKind.QUEUE}


@pytest.mark.parametrize("compute_type", c.COMPUTE_TYPES)
def test_each_compute_type_has_one_rule_delivering_the_whole_event_to_its_target(
        resources: dict[str, Any], ids: dict[str, str], compute_type: str) -> None:
    # GIVEN the fan-out rules whose target is this compute type's resource
    expected = target_arn(compute_type, ids[compute_type])
    [rule] = [r for r in case_rules(resources).values() if r["Targets"][0]["Arn"] == expected]
    [target] = rule["Targets"]
    # THEN it listens on the bus for fan-out events only
    pattern = rule["EventPattern"]
    assert references(rule["EventBusName"], ids["bus"])
    assert (pattern["source"], pattern["detail-type"]) == ([c.PREPROCESS_SOURCE], [c.CASE_DETAIL_TYPE])
    # AND matches the cases of its type: the default takes those without a type or of a type no one else claims
    if compute_type == c.DEFAULT_COMPUTE_TYPE:
        others = [t for t in c.COMPUTE_TYPES if t != compute_type]
        assert pattern["detail"] == {"request": {"$or": [{c.ATTR_COMPUTE_TYPE: [{"exists": False}]},
                                                         {c.ATTR_COMPUTE_TYPE: [{"anything-but": others}]}]}}
    else:
        assert pattern["detail"] == {"request": {c.ATTR_COMPUTE_TYPE: [compute_type]}}
    # AND delivers the whole event, retried, then dead-lettered like every rule target
    for rewriting in ("Input", "InputPath", "InputTransformer"):
        assert rewriting not in target
    assert references(target["DeadLetterConfig"]["Arn"], ids["rule_dlq"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == c.RULE_TARGET_RETRY_ATTEMPTS
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == c.RULE_TARGET_MAX_EVENT_AGE_SECONDS


def test_every_fan_out_rule_is_a_compute_target(resources: dict[str, Any]) -> None:
    # GIVEN the rules on fan-out events  THEN there is one per compute type, and no other
    assert len(case_rules(resources)) == len(c.COMPUTE_TYPES)


CASES = [
    ({"caseId": "0"}, c.COMPUTE_TYPE_LAMBDA),
    ({"caseId": "1", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_LAMBDA}, c.COMPUTE_TYPE_LAMBDA),
    ({"caseId": "2", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_LAMBDA_LARGE}, c.COMPUTE_TYPE_LAMBDA_LARGE),
    ({"caseId": "3", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_WORKFLOW}, c.COMPUTE_TYPE_WORKFLOW),
    ({"caseId": "4", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_QUEUE}, c.COMPUTE_TYPE_QUEUE),
    ({"caseId": "5", "weight": 3, "nested": {"computeType": "queue"}}, c.COMPUTE_TYPE_LAMBDA),
]


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[str(case) for case, _ in CASES])
def test_moto_routes_each_case_to_exactly_the_target_its_type_names(
        resources: dict[str, Any], ids: dict[str, str], case: dict[str, Any], expected: str) -> None:
    # GIVEN the rendered rule patterns, read by moto's EventBridge matcher (the embedded target's)
    owners = {json.dumps(target_arn(t, ids[t])): t for t in c.COMPUTE_TYPES}
    patterns = {owners[json.dumps(rule["Targets"][0]["Arn"])]: EventPattern.load(json.dumps(rule["EventPattern"]))
                for rule in case_rules(resources).values()}
    # WHEN a fan-out event for the case is matched
    matched = [t for t, pattern in patterns.items() if pattern.matches_event(fan_out_event(case))]  # type: ignore[arg-type]
    # THEN exactly one rule matches: the one for the case's compute type (the default without one)
    assert matched == [expected]


def test_a_completion_event_matches_no_compute_target(resources: dict[str, Any]) -> None:
    event = {**fan_out_event({"caseId": "0"}), "source": c.COMPUTE_SOURCE, "detail-type": c.COMPLETION_DETAIL_TYPE}
    assert not [lid for lid, rule in case_rules(resources).items()
                if EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(event)]  # type: ignore[arg-type]


def test_function_targets_count_their_crashes_through_the_failure_rule(
        resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rule for Lambda's on-failure records
    [rule] = [r["Properties"] for r in resources.values()
              if r["Type"] == RULE and r["Properties"]["EventPattern"].get("source") == [c.LAMBDA_DESTINATION_SOURCE]]
    # THEN it covers each function target by the qualified ARN Lambda's failure record names
    # (`...:function:NAME:$LATEST`), and sends those records whole to the fan-in buffer
    functions = [ids[t] for t in (c.COMPUTE_TYPE_LAMBDA, c.COMPUTE_TYPE_LAMBDA_LARGE)]
    assert rule["EventPattern"]["resources"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [f, "Arn"]}, ":$LATEST"]]}
                                                 for f in functions]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [ids["completion_queue"], "Arn"]}
    assert "InputTransformer" not in rule["Targets"][0] and "Input" not in rule["Targets"][0]
    # AND each function target retries, then sends its failure record to the bus
    configs = {config["Properties"]["FunctionName"]["Ref"]: config["Properties"]
               for config in resources.values() if config["Type"] == "AWS::Lambda::EventInvokeConfig"}
    assert set(configs) == set(functions)
    for config in configs.values():
        assert config["MaximumRetryAttempts"] == c.COMPUTE_ASYNC_RETRIES
        assert references(config["DestinationConfig"]["OnFailure"]["Destination"], ids["bus"])


@pytest.mark.parametrize(("compute_type", "handler"), [
    (c.COMPUTE_TYPE_LAMBDA, "compute"), (c.COMPUTE_TYPE_LAMBDA_LARGE, "compute"), ("step", "workflow_step")])
def test_compute_functions_record_the_type_they_serve(resources: dict[str, Any], ids: dict[str, str],
                                                      compute_type: str, handler: str) -> None:
    # GIVEN a function that computes cases  THEN it runs its handler and records its compute type with each result
    props = resources[ids[compute_type]]["Properties"]
    assert props["Handler"] == f"lambda_fns.{handler}.handler"
    recorded = c.COMPUTE_TYPE_WORKFLOW if compute_type == "step" else compute_type
    assert props["Environment"]["Variables"][c.ENV_COMPUTE_TYPE] == recorded
    assert props["Environment"]["Variables"][c.ENV_RESULTS_TABLE] == {"Ref": ids["results"]}


def test_the_large_lambda_target_gets_a_full_vcpu(resources: dict[str, Any], ids: dict[str, str]) -> None:
    assert resources[ids[c.COMPUTE_TYPE_LAMBDA_LARGE]]["Properties"]["MemorySize"] == 1769
    assert resources[ids[c.COMPUTE_TYPE_LAMBDA]]["Properties"]["MemorySize"] < 1769


# ---------------------------------------------------------------------------- the workflow target


def workflow_definition(resources: dict[str, Any], lid: str) -> dict[str, Any]:
    return rendered_json(resources[lid]["Properties"]["DefinitionString"])


def test_the_workflow_computes_in_steps_and_puts_the_completion_event(
        resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the compute workflow's definition
    definition = workflow_definition(resources, ids[c.COMPUTE_TYPE_WORKFLOW])
    states = definition["States"]
    # WHEN it starts with the whole fan-out event THEN it keeps the case reference (with the
    # request's shard count, which finds the case's results row, and its attempt)
    assert definition["StartAt"] == "ReadCase"
    assert states["ReadCase"]["Parameters"] == {"requestId.$": "$.detail.requestId", "request.$": "$.detail.request",
                                                c.DETAIL_DEADLINE + ".$": f"$.detail.{c.DETAIL_DEADLINE}",
                                                c.DETAIL_SHARDS + ".$": f"$.detail.{c.DETAIL_SHARDS}",
                                                c.DETAIL_ATTEMPT + ".$": f"$.detail.{c.DETAIL_ATTEMPT}"}
    # AND runs the computing step, a Lambda task with the case's deadline, retried when Lambda
    # throttles it or fails to run it, and when it fails
    compute = states[states["ReadCase"]["Next"]]
    assert compute["Resource"].endswith(":states:::lambda:invoke")
    assert compute["Parameters"]["FunctionName"] == "${GetAtt:" + ids["step"] + ".Arn}"
    assert compute["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "request.$": "$.request",
                                                c.DETAIL_DEADLINE + ".$": f"$.{c.DETAIL_DEADLINE}",
                                                c.DETAIL_SHARDS + ".$": f"$.{c.DETAIL_SHARDS}",
                                                c.DETAIL_ATTEMPT + ".$": f"$.{c.DETAIL_ATTEMPT}"}
    retried = [error for retry in compute["Retry"] for error in retry["ErrorEquals"]]
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException", "States.TaskFailed"} <= set(retried)
    # AND ends without a completion when the step did not compute the case (after its deadline, say)
    choice = states[compute["Next"]]
    skipped_rule, failed_rule = choice["Choices"]
    assert skipped_rule == {"Variable": "$.step.result.skipped", "IsPresent": True, "Next": "CaseNotComputed"}
    assert states["CaseNotComputed"]["Type"] == "Succeed"
    # AND otherwise branches on the step's outcome to one optimized PutEvents each, with the completion contract
    assert failed_rule["Variable"] == "$.step.result.state" and failed_rule["StringEquals"] == c.CASE_FAILED
    detail = {"requestId.$": "$.requestId", "request.$": "$.request", c.DETAIL_SHARDS + ".$": f"$.{c.DETAIL_SHARDS}",
              c.DETAIL_ATTEMPT + ".$": f"$.{c.DETAIL_ATTEMPT}"}  # the attempt echoed: it counts only for it
    succeeded = {**detail, "state": c.CASE_SUCCEEDED, "error": ""}
    failed = {**detail, "state": c.CASE_FAILED, "error.$": "$.step.result.error"}
    for state_name, expected in ((choice["Default"], succeeded), (failed_rule["Next"], failed)):
        put = states[state_name]
        assert put["Resource"].endswith(":states:::events:putEvents")
        [entry] = put["Parameters"]["Entries"]
        assert (entry["Source"], entry["DetailType"]) == (c.COMPUTE_SOURCE, c.COMPLETION_DETAIL_TYPE)
        assert entry["EventBusName"] == "${GetAtt:" + ids["bus"] + ".Arn}"
        assert entry["Detail"] == expected
        assert put.get("End") is True
        # retried on the error the integration documents for a refused entry, and on any other task
        # failure (an error of the call itself, whose name is not documented); no undocumented name
        assert [retry["ErrorEquals"] for retry in put["Retry"]] == [["EventBridge.FailedEntry"], ["States.TaskFailed"]]
    # AND a step that fails for good still ends in the FAILED completion, with the step's error
    [catch] = compute["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    describe = states[catch["Next"]]
    assert describe["Next"] == failed_rule["Next"]
    assert describe["Parameters"]["step"]["result"]["state"] == c.CASE_FAILED
    assert "States.Format" in describe["Parameters"]["step"]["result"]["error.$"]
    # AND the workflow is Standard, traced and logged like the others
    props = resources[ids[c.COMPUTE_TYPE_WORKFLOW]]["Properties"]
    assert props["StateMachineType"] == "STANDARD" and props["TracingConfiguration"] == {"Enabled": True}


def role_statements(resources: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    policies = [r["Properties"] for r in resources.values()
                if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]]
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]


def allows(statements: list[dict[str, Any]], action: str, lid: str) -> bool:
    return any(any(fnmatchcase(action, a) for a in as_list(s["Action"])) and any(references(r, lid)
               for r in as_list(s["Resource"])) for s in statements)


def test_workflow_and_step_roles_are_least_privilege(resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the roles of the workflow and of its step
    workflow_role = resources[ids[c.COMPUTE_TYPE_WORKFLOW]]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    step_role = resources[ids["step"]]["Properties"]["Role"]["Fn::GetAtt"][0]
    workflow, step = role_statements(resources, workflow_role), role_statements(resources, step_role)
    # THEN the workflow may invoke its step and put completion events (only) on the bus
    assert allows(workflow, "lambda:InvokeFunction", ids["step"])
    [put] = [s for s in workflow if "events:PutEvents" in as_list(s["Action"])]
    assert put["Condition"] == {"ForAllValues:StringEquals": {"events:source": [c.COMPUTE_SOURCE],
                                                              "events:detail-type": [c.COMPLETION_DETAIL_TYPE]}}
    # AND the step may record a result in a results row (its result's attributes only) and read it,
    # and nothing else of the tables or the bus
    [update] = [s for s in step if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert c.ATTR_OUTCOME not in update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert allows(step, "dynamodb:GetItem", ids["results"])
    assert not allows(step, "dynamodb:PutItem", ids["results"])
    assert not allows(step, "events:PutEvents", ids["bus"])


# ---------------------------------------------------------------------------- the queue target


def test_the_work_queue_is_encrypted_tls_only_with_its_own_dead_letter_queue(
        resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the queue target's queue
    queue = resources[ids[c.COMPUTE_TYPE_QUEUE]]["Properties"]
    # THEN it is encrypted with SQS-managed keys, hides a case for the visibility timeout, and
    # moves a message received too often to its own dead-letter queue (also encrypted)
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] == c.WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [ids["queue_dlq"], "Arn"]},
                                      "maxReceiveCount": c.WORK_QUEUE_MAX_RECEIVES}
    assert resources[ids["queue_dlq"]]["Properties"]["SqsManagedSseEnabled"] is True
    # AND its policy denies any request not made over TLS, and lets only the queue rule send to it
    [policy] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SQS::QueuePolicy"
                and {"Ref": ids[c.COMPUTE_TYPE_QUEUE]} in r["Properties"]["Queues"]]
    statements = policy["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)
    [send] = [s for s in statements if s["Effect"] == "Allow"]
    assert "sqs:SendMessage" in as_list(send["Action"])
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    queue_rule = logical_id(Template.from_json({"Resources": resources}), RULE, "QueueCaseRule")
    assert send["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [queue_rule, "Arn"]}
    # AND the dead-letter queue of the work queue is TLS-only too
    assert any(r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": ids["queue_dlq"]} in r["Properties"]["Queues"]
               for r in resources.values())


def test_the_worker_policy_is_what_a_worker_needs_and_no_more(resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the managed policy a worker's role attaches
    statements = resources[ids["worker_policy"]]["Properties"]["PolicyDocument"]["Statement"]
    granted = {(action, json.dumps(s["Resource"]), json.dumps(s.get("Condition"), sort_keys=True))
               for s in statements for action in as_list(s["Action"])}
    # THEN it may consume the queue, record results (its result's attributes only, never the counted
    # mark: no PutItem, which would replace the row) and put completion events (only), on those resources only
    queue = json.dumps({"Fn::GetAtt": [ids[c.COMPUTE_TYPE_QUEUE], "Arn"]})
    results = json.dumps({"Fn::GetAtt": [ids["results"], "Arn"]})
    result_attributes = {"ForAllValues:StringEquals": {"dynamodb:Attributes": [
        c.ATTR_REQUEST_SHARD, c.ATTR_CASE_ID, c.ATTR_STATE, c.ATTR_ERROR, c.ATTR_STARTED_AT, c.ATTR_FINISHED_AT,
        c.ATTR_DURATION_MS, c.ATTR_COMPUTED_BY]},
        "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"]}}
    completions = {"ForAllValues:StringEquals": {"events:source": [c.COMPUTE_SOURCE],
                                                 "events:detail-type": [c.COMPLETION_DETAIL_TYPE]}}
    assert granted == {
        ("sqs:ReceiveMessage", queue, "null"), ("sqs:ChangeMessageVisibility", queue, "null"),
        ("sqs:DeleteMessage", queue, "null"), ("sqs:GetQueueAttributes", queue, "null"),
        ("dynamodb:UpdateItem", results, json.dumps(result_attributes, sort_keys=True)),
        ("dynamodb:GetItem", results, "null"),
        ("events:PutEvents", json.dumps({"Fn::GetAtt": [ids["bus"], "Arn"]}), json.dumps(completions, sort_keys=True)),
    }
    assert all(s["Effect"] == "Allow" for s in statements)


# ---------------------------------------------------------------------------- the registry's guards


def bare_registry() -> tuple[cdk.App, ComputeBackends, lambda_.IFunction]:
    app = cdk.App()
    stack = cdk.Stack(app, "Registry")
    routing = EventRouting(stack, "Routing")
    function = lambda_.Function.from_function_arn(stack, "Fn", "arn:aws:lambda:us-east-1:123456789012:function:f")
    completions = sqs.Queue.from_queue_arn(stack, "Completions", "arn:aws:sqs:us-east-1:123456789012:completions")
    registry = ComputeBackends(stack, "Targets", routing=routing, default=ComputeBackend.function(function),
                              count_failures_with=completions)
    return app, registry, function


def test_the_registry_refuses_an_unknown_or_taken_compute_type() -> None:
    _, registry, function = bare_registry()
    with pytest.raises(ValueError, match="unknown: add it to COMPUTE_TYPES"):
        registry.add("Gpu", compute_type="gpu", target=ComputeBackend.function(function))
    with pytest.raises(ValueError, match="already has a target"):
        registry.add("Again", compute_type=c.DEFAULT_COMPUTE_TYPE, target=ComputeBackend.function(function))


def test_synthesis_fails_while_a_known_compute_type_has_no_target() -> None:
    # GIVEN a registry with only the default target, while requests may name four types
    app, _, _ = bare_registry()
    # WHEN the app synthesizes  THEN it fails, naming the types whose cases would go nowhere
    with pytest.raises(Exception, match="compute types without a target: lambda-large, workflow, queue"):
        app.synth()


def readme_fourth_target() -> tuple[str, str]:
    """The README's example of a fourth target: (the constants part, the stack part)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Compute targets"):text.index("## Design")]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    constants_part, stack_part = block.split("# infra/stack.py", 1)
    return constants_part, stack_part.split("\n", 1)[1]


def test_the_readme_s_fourth_target_is_a_name_and_one_call(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    # GIVEN the README's code for a fourth target: a name in COMPUTE_TYPES and the stack's lines
    constants_code, stack_code = readme_fourth_target()
    names = {name: value for name, value in vars(c).items() if name.isupper()}
    exec(constants_code, names)
    monkeypatch.setattr(c, "COMPUTE_TYPES", names["COMPUTE_TYPES"])
    monkeypatch.setattr(c, "COMPUTE_TYPE_GPU", names["COMPUTE_TYPE_GPU"], raising=False)
    gpu_type = names["COMPUTE_TYPE_GPU"]

    class WithGpu(FanflowStack):
        def __init__(self, scope: cdk.App, construct_id: str, **kwargs: Any) -> None:
            super().__init__(scope, construct_id, **kwargs)
            # the stack's own names, where the README says to put the lines
            exec(stack_code, {"self": self, "c": c, "routing": self.routing, "results": self.store.results_table,
                              "compute_targets": self.compute_targets, "ComputeQueue": ComputeQueue,
                              "ComputeBackend": ComputeBackend, "CfnOutput": cdk.CfnOutput})

    # WHEN the stack is built and synthesized (it would fail with a type left without a target)
    monkeypatch.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    app = cdk.App(outdir=str(tmp_path))
    stack = WithGpu(app, "WithGpu", synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False))
    resources = dict(Template.from_stack(stack).to_json()["Resources"])
    app.synth()
    # THEN a gpu case goes to the new queue, and only there; the others are routed as before
    queue = logical_id(Template.from_json({"Resources": resources}), QUEUE, "ComputeGpuWorkQueue")
    routed = {}
    for case in ({"caseId": "g", c.ATTR_COMPUTE_TYPE: gpu_type}, {"caseId": "d"},
                 {"caseId": "q", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_QUEUE}):
        [rule] = [rule for rule in case_rules(resources).values()
                  if EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(fan_out_event(case))]  # type: ignore[arg-type]
        routed[case["caseId"]] = rule["Targets"][0]["Arn"]
    assert routed["g"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert routed["d"] != routed["g"] and routed["q"] != routed["g"]
    # AND its workers find the queue in the stack outputs, and requests may name the new type
    assert "GpuQueueUrl" in Template.from_stack(stack).find_outputs("*")
    assert parse_request({"requestId": "r", "requests": [{"caseId": "0", c.ATTR_COMPUTE_TYPE: gpu_type}]}).length == 1


# ---------------------------------------------------------------------------- the request side


def test_an_unknown_compute_type_is_rejected_with_the_known_ones() -> None:
    request = {"requestId": "r", "requests": [{"caseId": "0"}, {"caseId": "1", c.ATTR_COMPUTE_TYPE: "gpu"}]}
    with pytest.raises(RequestError) as error:
        parse_request(request)
    message = str(error.value)
    assert "requests[1].computeType 'gpu' is not a known compute type" in message
    assert f"known: {', '.join(c.COMPUTE_TYPES)}" in message


@pytest.mark.parametrize("value", [None, 3, "", "Queue", ["queue"]])
def test_a_compute_type_must_be_one_of_the_names(value: Any) -> None:
    with pytest.raises(RequestError, match="is not a known compute type"):
        parse_request({"requestId": "r", "requests": [{"caseId": "0", c.ATTR_COMPUTE_TYPE: value}]})


def test_every_known_compute_type_is_accepted() -> None:
    cases = [{"caseId": str(i), c.ATTR_COMPUTE_TYPE: t} for i, t in enumerate(c.COMPUTE_TYPES)]
    assert parse_request({"requestId": "r", "requests": [*cases, {"caseId": "none"}]}).length == len(cases) + 1
