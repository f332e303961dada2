"""Which compute target runs a case. Every fan-out event goes to exactly one target, chosen
by its case's `computeType` (`detail.request.computeType`): a Lambda function, a Step
Functions workflow or an SQS queue. Registering a target is one call; PreProcess, Increment
and Summary do not change, because every target reports through the same completion event.

The default target takes every case no other target claims, including cases without a
computeType. EventBridge's `anything-but` does not match an event that lacks the field, so
the default rule matches `exists: false` OR `anything-but: [claimed types]`, with `$or`
(EventBridge and moto's matcher both support it; tests/unit/test_compute_targets_infra.py checks
both the rendered pattern and moto's matching of it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jsii
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IValidation

from infra.components.routing import EventRouting
from lambda_fns import constants as c


class BackendKind(Enum):
    FUNCTION = "Lambda function"
    WORKFLOW = "Step Functions workflow"
    QUEUE = "SQS queue"


@dataclass(frozen=True)
class ComputeBackend:
    """Where a case is computed. Build one with `function`, `workflow` or `queue`."""

    kind: BackendKind
    resource: Any  # lambda_.IFunction | sfn.IStateMachine | sqs.IQueue, as `kind` says

    @staticmethod
    def function(function: lambda_.IFunction) -> ComputeBackend:
        """A function invoked asynchronously with the whole fan-out event (lambda_fns.compute's
        contract); a failure after Lambda's retries is counted as a FAILED case."""
        return ComputeBackend(BackendKind.FUNCTION, function)

    @staticmethod
    def workflow(state_machine: sfn.IStateMachine) -> ComputeBackend:
        """A state machine started with the whole fan-out event; it puts the completion event."""
        return ComputeBackend(BackendKind.WORKFLOW, state_machine)

    @staticmethod
    def queue(queue: sqs.IQueue) -> ComputeBackend:
        """A queue that receives the whole fan-out event; `fanflow worker` computes and reports."""
        return ComputeBackend(BackendKind.QUEUE, queue)

    def rule_target(self, options: dict[str, Any]) -> events.IRuleTarget:
        if self.kind is BackendKind.FUNCTION:
            return targets.LambdaFunction(self.resource, **options)
        if self.kind is BackendKind.WORKFLOW:
            return targets.SfnStateMachine(self.resource, **options)
        return targets.SqsQueue(self.resource, **options)


class ComputeBackends(Construct):
    """The registry of compute targets: one rule per computeType on the routing's bus."""

    def __init__(self, scope: Construct, construct_id: str, *, routing: EventRouting, default: ComputeBackend,
                 count_failures_with: sqs.IQueue, default_type: str = c.DEFAULT_COMPUTE_TYPE,
                 compute_types: Sequence[str] | None = None) -> None:
        super().__init__(scope, construct_id)
        compute_types = c.COMPUTE_TYPES if compute_types is None else compute_types
        if default_type not in compute_types:
            raise ValueError(f"the default compute type {default_type!r} is not one of {list(compute_types)}")
        self.routing = routing
        self.count_failures_with = count_failures_with
        self.compute_types = tuple(compute_types)
        self.default_type = default_type
        self.targets: dict[str, ComputeBackend] = {}
        self.rules: dict[str, events.Rule] = {}
        # The types the others claim come from the list validation accepts (a request with any
        # other computeType is refused), and synthesis fails unless each has its target.
        claimed = [compute_type for compute_type in self.compute_types if compute_type != default_type]
        request = {"$or": [{c.ATTR_COMPUTE_TYPE: [{"exists": False}]},
                           {c.ATTR_COMPUTE_TYPE: [{"anything-but": claimed}]}]} if claimed else None
        self._register(default_type, default, "CaseRule", request,
                       description=f"Fan-out: cases without a computeType, or {default_type!r}, to the default "
                       f"compute target ({default.kind.value})")
        self.node.add_validation(_EveryTypeHasATarget(self))

    def add(self, name: str, *, compute_type: str, target: ComputeBackend) -> events.Rule:
        """Route the cases whose computeType is `compute_type` to `target`. `name` prefixes the
        rule's construct id."""
        if compute_type not in self.compute_types:
            raise ValueError(f"compute type {compute_type!r} is unknown: add it to COMPUTE_TYPES in "
                             "lambda_fns/constants.py, so that requests may name it")
        if compute_type in self.targets:
            raise ValueError(f"compute type {compute_type!r} already has a target")
        return self._register(compute_type, target, f"{name}CaseRule", {c.ATTR_COMPUTE_TYPE: [compute_type]},
                              description=f"Fan-out: cases of computeType {compute_type!r} to a "
                              f"{target.kind.value}")

    def _register(self, compute_type: str, target: ComputeBackend, rule_id: str, request: dict[str, Any] | None,
                  *, description: str) -> events.Rule:
        rule = self.routing.route_cases(rule_id, target=target.rule_target(self.routing.target_options()),
                                        description=description, request=request)
        if target.kind is BackendKind.FUNCTION:
            self.routing.route_compute_failures_to(target.resource, self.count_failures_with)
        self.targets[compute_type] = target
        self.rules[compute_type] = rule
        return rule


@jsii.implements(IValidation)
class _EveryTypeHasATarget:
    """A computeType that requests may name but no target takes would leave its cases unrouted."""

    def __init__(self, registry: ComputeBackends) -> None:
        self.registry = registry

    def validate(self) -> list[str]:
        missing = [t for t in self.registry.compute_types if t not in self.registry.targets]
        return [f"compute types without a target: {', '.join(missing)} (register one with ComputeBackends.add, "
                "or remove them from COMPUTE_TYPES)"] if missing else []
