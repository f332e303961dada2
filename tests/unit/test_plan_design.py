"""The plan models fanflow as deployed: its design figures (fanflow/awsmodel/fanflow_flow.py) are
the synthesized stack's (memory, reserved concurrency, the Distributed Map, the fan-in's event
source mapping, Compute's maximum event age) and the state counts it charges are the paths
through the workflows' definitions. No AWS: the stack is built in-process once per module."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from fanflow.awsmodel import fanflow_flow
from fanflow.awsmodel.fanflow_flow import DESIGN
from fanflow.awsmodel.world import PlanInputs
from infra.app import build_app
from lambda_fns import constants as c
from tests.cfn import definition

FUNCTION = "AWS::Lambda::Function"
# The model's name of each function, and a fragment of its logical id in the template.
FUNCTIONS = {
    fanflow_flow.PREPARE: "FanOutPrepareFunction", fanflow_flow.EMIT: "FanOutEmitFunction",
    fanflow_flow.LIFECYCLE: "FanOutLifecycleFunction", fanflow_flow.COMPUTE: "ComputeFunction",
    fanflow_flow.COMPUTE_LARGE: "ComputeLargeFunction", fanflow_flow.WORKFLOW_STEP: "ComputeWorkflowStepFunction",
    fanflow_flow.CONSUMER: "FanInConsumerFunction", fanflow_flow.COUNT_BATCH: "FanInCountFunction",
    fanflow_flow.SUMMARY: "FanInSummaryFunction",
}


@pytest.fixture(scope="module")
def template() -> Template:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
            patch.delenv(name, raising=False)
        stack = build_app().node.find_child(c.STACK_NAME)
    assert isinstance(stack, Stack)
    return Template.from_stack(stack)


def resource(template: Template, resource_type: str, fragment: str) -> dict[str, Any]:
    """The properties of the one resource of this type whose logical id starts with `fragment`."""
    found = [r for lid, r in template.to_json()["Resources"].items()
             if r["Type"] == resource_type and lid.startswith(fragment)]
    assert len(found) == 1, f"expected one {resource_type} {fragment}, found {len(found)}"
    return dict(found[0]["Properties"])


def path(states: dict[str, Any], start: str, choices: dict[str, str]) -> list[str]:
    """The states an execution goes through from `start`, taking `choices[state]` at a Choice
    (else its Default), until a state ends or `choices` says to stop there ("" as the choice)."""
    names, name = [], start
    while name:
        names.append(name)
        state = states[name]
        if name in choices and not choices[name]:
            break
        if state["Type"] == "Choice":
            name = choices.get(name) or state["Default"]
        else:
            name = "" if state.get("End") or state["Type"] in ("Succeed", "Fail") else state["Next"]
    return names


def test_memory_and_reserved_concurrency_are_the_deployed_ones(template: Template) -> None:
    reserved = fanflow_flow.reserved_concurrency(PlanInputs(cases=1, compute_seconds=0.0))
    deployed = {name: resource(template, FUNCTION, fragment).get("ReservedConcurrentExecutions")
                for name, fragment in FUNCTIONS.items()}
    assert deployed == reserved
    # Every function of the stack is one the plan reserves for
    assert len(template.find_resources(FUNCTION)) == len(FUNCTIONS)
    memory = {fanflow_flow.PREPARE: DESIGN.prepare_memory_mb, fanflow_flow.EMIT: DESIGN.emit_memory_mb,
              fanflow_flow.COMPUTE: DESIGN.compute_memory_mb, fanflow_flow.CONSUMER: DESIGN.consumer_memory_mb,
              fanflow_flow.COUNT_BATCH: DESIGN.count_batch_memory_mb, fanflow_flow.SUMMARY: DESIGN.summary_memory_mb}
    assert {name: resource(template, FUNCTION, FUNCTIONS[name])["MemorySize"] for name in memory} == memory


def test_fan_out_is_a_distributed_map_of_standard_children(template: Template) -> None:
    fan_out = definition(template, "PreProcess")["States"]["FanOut"]
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert fan_out["MaxConcurrency"] == DESIGN.fan_out_concurrency


def test_the_transitions_the_plan_charges_are_the_definitions_paths(template: Template) -> None:
    states = definition(template, "PreProcess")["States"]
    # A new request (no redrive) up to the Map, then to the deadline's wait
    before = path(states, "Redrive?", {"FanOut": ""})
    assert before == ["Redrive?", "Prepare", "OpenRequest", "FanOut"]
    assert len(before) - 1 == DESIGN.preprocess_transitions_before_map
    after = path(states, states["FanOut"]["Next"], {"AwaitDeadline": ""})
    assert len(after) == DESIGN.preprocess_transitions_after_map
    # At the deadline the request is closed already: the claim's condition fails, the row is read
    claim = states["ClaimTimeout"]
    read = next(catch["Next"] for catch in claim["Catch"] if "DynamoDB.ConditionalCheckFailedException"
                in catch["ErrorEquals"])
    closed = ["ClaimTimeout", *path(states, read, {"ClaimHeld?": "FanOutFailed?", "FanOutFailed?": "RequestClosed"})]
    assert closed == ["ClaimTimeout", "ReadRequestStatus", "ClaimHeld?", "FanOutFailed?", "RequestClosed"]
    assert len(closed) == DESIGN.preprocess_transitions_at_deadline
    # A chunk's child: EmitChunk and ChunkPending?, then ChunkOutcome? and ChunkEmitted; a resume
    # goes through BackOffBeforeResuming back to EmitChunk and ChunkPending?
    child = states["FanOut"]["ItemProcessor"]["States"]
    emitted = path(child, "EmitChunk", {"ChunkPending?": "ChunkOutcome?"})
    assert emitted == ["EmitChunk", "ChunkPending?", "ChunkOutcome?", "ChunkEmitted"]
    assert len(emitted) == DESIGN.child_emit_transitions + DESIGN.child_end_transitions
    resume = next(rule["Next"] for rule in child["ChunkPending?"]["Choices"])
    assert path(child, resume, {"ChunkPending?": ""}) == ["BackOffBeforeResuming", "EmitChunk",
                                                                    "ChunkPending?"]
    assert DESIGN.child_resume_transitions == 3
    # Increment: CountBatch, SummarizeFinished, Counted
    increment = definition(template, "Increment")
    assert len(path(increment["States"], increment["StartAt"], {})) == DESIGN.express_states


def test_fan_in_and_compute_settings_are_the_deployed_ones(template: Template) -> None:
    mapping = resource(template, "AWS::Lambda::EventSourceMapping", "FanInConsumerFunction")
    assert mapping["BatchSize"] == DESIGN.esm_batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == DESIGN.esm_window
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == DESIGN.esm_max_concurrency
    invoke = resource(template, "AWS::Lambda::EventInvokeConfig", "ComputeFunctionEventInvokeConfig")
    assert invoke["MaximumEventAgeInSeconds"] == DESIGN.compute_max_event_age
    queue = resource(template, "AWS::SQS::Queue", "FanInCompletionQueue")
    assert queue["VisibilityTimeout"] == DESIGN.visibility_timeout

