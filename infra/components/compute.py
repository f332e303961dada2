"""A Lambda compute target: a function that runs one case per fan-out event. The default
target is one; another computeType can get its own (more memory, say) with the same handler."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.functions import python_function
from infra.components.grants import grant_put_events, grant_result_writes
from lambda_fns import constants as c


class ComputeFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus,
                 results_table: dynamodb.ITable, compute_seconds: float,
                 compute_type: str = c.DEFAULT_COMPUTE_TYPE,
                 description: str = "fanflow: computes one case and reports its completion",
                 memory_mb: int = 256) -> None:
        super().__init__(scope, construct_id)
        self.compute_type = compute_type
        self.function: lambda_.Function = python_function(
            self, "Function",
            module="compute",
            description=description,
            timeout_seconds=c.COMPUTE_TIMEOUT_SECONDS,
            memory_mb=memory_mb,
            environment={
                # The seed's variable names, so a seed-style compute function reads the same.
                c.ENV_EVENTBUS_NAME: bus.event_bus_name,
                c.ENV_EVENTBUS_ARN: bus.event_bus_arn,
                c.ENV_EVENTBUS_SOURCE: c.COMPUTE_SOURCE,
                c.ENV_EVENTBUS_DETAILTYPE: c.COMPLETION_DETAIL_TYPE,
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_COMPUTE_SECONDS: str(compute_seconds),
                c.ENV_COMPUTE_TYPE: compute_type,  # recorded with each result: who computed it
            },
        )
        grant_put_events(self.function, bus, source=c.COMPUTE_SOURCE, detail_type=c.COMPLETION_DETAIL_TYPE)
        grant_result_writes(self.function, results_table)
        # A crash or timeout that survives Lambda's retries still reaches the count: the
        # failure record goes to the bus, and a rule turns it into a FAILED completion.
        self.function.configure_async_invoke(
            retry_attempts=c.COMPUTE_ASYNC_RETRIES,
            max_event_age=Duration.hours(1),
            on_failure=FailureRecordsTo(bus),  # type: ignore[arg-type]  # jsii passes bind's options positionally
        )


@jsii.implements(lambda_.IDestination)
class FailureRecordsTo:
    """An EventBridge on-failure destination whose grant is held to what Lambda puts there: the
    failure record (source `lambda`, its detail-type), which Lambda puts with the function's own
    role (docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). CDK's
    EventBridgeDestination grants PutEvents of any event, which would let a compute role forge
    fan-out events."""

    def __init__(self, bus: events.IEventBus) -> None:
        self.bus = bus

    def bind(self, scope: Construct, fn: lambda_.IFunction, options: Any = None) -> lambda_.DestinationConfig:
        grant_put_events(fn, self.bus, source=c.LAMBDA_DESTINATION_SOURCE, detail_type=c.LAMBDA_FAILURE_DETAIL_TYPE)
        return lambda_.DestinationConfig(destination=self.bus.event_bus_arn)
