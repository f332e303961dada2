"""Running Summary: the task every workflow runs it with (its retries are what
constants.STALE_CLAIM_SECONDS assumes), and what the Summary function may do, nothing more:
read and close its request's counter row, query its results rows, read its manifest, store its
summary, and publish the request's completion event (its own source and detail-type only).
FanInWorkflow builds the function; `grant_summary` is the grant it should make."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import lambda_task
from infra.components.grants import put_events_statement
from lambda_fns import constants as c

MANIFESTS = f"{c.MANIFESTS_PREFIX}*"
SUMMARIES = f"{c.SUMMARIES_PREFIX}*"


def summary_task(scope: Construct, construct_id: str, function: lambda_.IFunction, reason: str,
                 request_id_path: str = "$.requestId") -> tasks.LambdaInvoke:
    """Run Summary for a claimed request. Its function errors are retried SUMMARY_ATTEMPTS times
    in all (constants.STALE_CLAIM_SECONDS assumes no more); throttling and Lambda's service errors
    are retried before that, without running it."""
    task = lambda_task(
        scope, construct_id, function=function, result_path=sfn.JsonPath.DISCARD, output_path=None,
        payload=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at(request_id_path), "reason": reason}),
    )
    task.add_retry(errors=["States.TaskFailed"], max_attempts=c.SUMMARY_ATTEMPTS - 1,
                   interval=Duration.seconds(2), backoff_rate=2)
    return task


def summary_statements(*, counter_table: dynamodb.ITable, results_table: dynamodb.ITable,
                       artifacts_bucket: s3.IBucket, bus: events.IEventBus) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[counter_table.table_arn]),
        iam.PolicyStatement(actions=["dynamodb:Query"], resources=[results_table.table_arn]),
        # Objects only: no s3:List* on the bucket (a missing manifest then reads as AccessDenied,
        # which Summary reports as an error either way).
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[artifacts_bucket.arn_for_objects(MANIFESTS)]),
        iam.PolicyStatement(actions=["s3:PutObject"], resources=[artifacts_bucket.arn_for_objects(SUMMARIES)]),
        put_events_statement(bus, source=c.SUMMARY_SOURCE, detail_type=c.SUMMARY_DETAIL_TYPE),
    ]


def grant_summary(grantee: iam.IGrantable, *, counter_table: dynamodb.ITable, results_table: dynamodb.ITable,
                  artifacts_bucket: s3.IBucket, bus: events.IEventBus) -> None:
    for statement in summary_statements(counter_table=counter_table, results_table=results_table,
                                        artifacts_bucket=artifacts_bucket, bus=bus):
        grantee.grant_principal.add_to_principal_policy(statement)
