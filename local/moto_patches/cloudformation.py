"""CloudFormation: what fanflow's stacks need of moto's CloudFormation beyond what it does.

Replaces, in moto 5.2.5: moto.events.models.EventBus gets a `physical_resource_id` (its
name), and moto.stepfunctions.models.stepfunctions_backends, where CloudFormation creates
state machines, becomes moto.stepfunctions.parser.models.stepfunctions_parser_backends, the
backend that executes them (4). A state machine's StateMachineType is adaptation 19's
(executions.py).
Tests: tests/unit/test_patches_cloudformation.py.

4. CloudFormation: `Ref` to an AWS::Events::EventBus resolves to a Python object, and
   state machines land in the backend that does not execute them. Both are fixed.
"""

from __future__ import annotations

from moto.events.models import EventBus

from .patching import Patch


def cloudformation_resources(patch: Patch) -> None:
    """Adaptation 4: EventBus gets the physical_resource_id that `Ref` resolves to (its name),
    and moto.stepfunctions.models' `stepfunctions_backends`, where CloudFormation creates state
    machines, is the backend that executes them (moto.stepfunctions.parser.models)."""
    if "physical_resource_id" not in EventBus.__dict__:
        patch(EventBus, "physical_resource_id", property(lambda self: self.name))
    import moto.stepfunctions.models as sfn_models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    patch(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
