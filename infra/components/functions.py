"""The shape every fanflow function and workflow shares: Python 3.12, X-Ray tracing, its own
log group with a retention, the shared asset, configuration passed as environment variables;
and the retries every Lambda and DynamoDB task of every workflow gets for transient errors."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import lambda_asset
from lambda_fns import constants as c

LOG_RETENTION = logs.RetentionDays.ONE_MONTH

# Lambda's transient service errors, as Step Functions reports them
# (docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), and the error
# of an invocation Lambda throttled: the account's or the function's concurrency is used up.
LAMBDA_SERVICE_ERRORS = ["Lambda.ClientExecutionTimeoutException", "Lambda.ServiceException",
                         "Lambda.AWSLambdaException", "Lambda.SdkClientException"]
LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"
# A throttled invocation is retried for a while: Compute's ceiling keeps the orchestration's
# floors free, but the account may still be short of concurrency for minutes.
THROTTLE_RETRY = dict(interval=Duration.seconds(1), max_attempts=12, backoff_rate=2,
                      max_delay=Duration.seconds(60), jitter_strategy=sfn.JitterType.FULL)
SERVICE_RETRY = dict(interval=Duration.seconds(2), max_attempts=6, backoff_rate=2,
                     max_delay=Duration.seconds(30), jitter_strategy=sfn.JitterType.FULL)
# The optimized DynamoDB integration names an error "DynamoDB." and the exception's name; which
# transient exceptions (throttling, internal errors, transaction conflicts) it reports is not
# listed for every call, so every task failure is retried except a failed condition, which is
# an answer and goes to the state's Catch at once.
DYNAMODB_CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
DYNAMODB_RETRY = dict(interval=Duration.seconds(1), max_attempts=8, backoff_rate=2,
                      max_delay=Duration.seconds(30), jitter_strategy=sfn.JitterType.FULL)


def retry_lambda_transients(task: sfn.TaskStateBase) -> None:
    """Retry an invocation Lambda throttled or failed to run (the function never ran, or ran and
    was lost to a service error). A function error is the caller's to retry, after these."""
    task.add_retry(errors=LAMBDA_SERVICE_ERRORS, **SERVICE_RETRY)  # type: ignore[arg-type]
    task.add_retry(errors=[LAMBDA_THROTTLED], **THROTTLE_RETRY)  # type: ignore[arg-type]


def lambda_task(scope: Construct, construct_id: str, *, function: lambda_.IFunction,
                payload: sfn.TaskInput | None = None, output_path: str | None = "$.Payload",
                **options: Any) -> tasks.LambdaInvoke:
    """A Lambda task that retries Lambda's transient errors and throttling (CDK's default retry
    covers the service errors but not throttling, and without jitter)."""
    task = tasks.LambdaInvoke(scope, construct_id, lambda_function=function, payload=payload,
                              output_path=output_path, retry_on_service_exceptions=False, **options)
    retry_lambda_transients(task)
    return task


def retry_dynamodb_transients(task: sfn.TaskStateBase) -> None:
    """Retry a DynamoDB task's transient failures; a failed condition is not retried."""
    task.add_retry(errors=[DYNAMODB_CONDITION_FAILED], max_attempts=0)
    task.add_retry(errors=["States.TaskFailed"], **DYNAMODB_RETRY)  # type: ignore[arg-type]


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
                  comment: str, log_level: sfn.LogLevel = sfn.LogLevel.ERROR,
                  express: bool = False) -> sfn.StateMachine:
    """A workflow (Standard, or Express) with X-Ray tracing, logging its errors. Per-request
    workflows may log every event (LogLevel.ALL); per-case and per-batch ones log only errors,
    since at ALL they write most of the stack's log volume."""
    return sfn.StateMachine(
        scope, construct_id,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        comment=comment,
        state_machine_type=sfn.StateMachineType.EXPRESS if express else sfn.StateMachineType.STANDARD,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=logs.LogGroup(scope, f"{construct_id}Logs", retention=LOG_RETENTION,
                                      removal_policy=RemovalPolicy.DESTROY),
            level=log_level,
            include_execution_data=False,  # case payloads stay out of the logs
        ),
    )


def request_key(request_id_path: str = "$.requestId") -> dict[str, tasks.DynamoAttributeValue]:
    """The counter row's key, for a DynamoDB task, from the request id at `request_id_path`."""
    return {c.ATTR_REQUEST_ID: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at(request_id_path))}
