"""Adaptations 4 (local/moto_patches/cloudformation.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import json

import boto3
import moto.stepfunctions.models as sfn_models
from moto.events.models import EventBus
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from tests.patch_helpers import (
    ACCOUNT,
    PASS_DEFINITION,
    REGION,
    ROLE_ARN,
    Recorder,
    create_stack,
    make_queue,
    queue_bodies,
    wait_for_execution,
)

BUS_TEMPLATE = {"Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "fanflow-bus"}}}
STATE_MACHINE_TEMPLATE = {
    "Machine": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"StateMachineName": "cfn-machine", "RoleArn": ROLE_ARN, "DefinitionString": PASS_DEFINITION},
    }
}


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
