"""The shape every fanflow function shares: Python 3.12, X-Ray tracing, its own log group
with a retention, the shared asset, and configuration passed as environment variables."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import lambda_asset

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def python_function(scope: Construct, construct_id: str, *, module: str, description: str,
                    timeout_seconds: int, environment: dict[str, str],
                    memory_mb: int = 256) -> lambda_.Function:
    return lambda_.Function(
        scope, construct_id,
        runtime=lambda_.Runtime.PYTHON_3_12,
        architecture=lambda_.Architecture.ARM_64,
        code=lambda_asset.code(),
        handler=lambda_asset.handler(module),
        description=description,
        timeout=Duration.seconds(timeout_seconds),
        memory_size=memory_mb,
        tracing=lambda_.Tracing.ACTIVE,
        environment=environment,
        log_group=logs.LogGroup(scope, f"{construct_id}Logs", retention=LOG_RETENTION,
                                removal_policy=RemovalPolicy.DESTROY),
    )


def state_machine(scope: Construct, construct_id: str, *, definition: sfn.IChainable,
                  comment: str, express: bool = False) -> sfn.StateMachine:
    """A workflow with X-Ray tracing. Standard ones log every execution event; Express ones
    (which keep no execution history) log their errors, one execution per fan-in batch."""
    return sfn.StateMachine(
        scope, construct_id,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        comment=comment,
        state_machine_type=sfn.StateMachineType.EXPRESS if express else sfn.StateMachineType.STANDARD,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=logs.LogGroup(scope, f"{construct_id}Logs", retention=LOG_RETENTION,
                                      removal_policy=RemovalPolicy.DESTROY),
            level=sfn.LogLevel.ERROR if express else sfn.LogLevel.ALL,
            include_execution_data=False,  # case payloads stay out of the logs
        ),
    )
