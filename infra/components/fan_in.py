"""Fan-in: the Increment workflow counts each completed case exactly once and, when the
count reaches the target, claims the request and runs Summary once."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import python_function, state_machine
from lambda_fns import constants as c

DDB_TRANSIENT_ERRORS = [
    "DynamoDb.InternalServerErrorException",
    "DynamoDb.ThrottlingException",
    "DynamoDb.ProvisionedThroughputExceededException",
    "DynamoDb.RequestLimitExceededException",
]


def request_key(request_id_path: str = "$.requestId") -> dict[str, tasks.DynamoAttributeValue]:
    return {c.ATTR_REQUEST_ID: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at(request_id_path))}


def summary_invocation(scope: Construct, construct_id: str, function: lambda_.IFunction,
                       reason: str, request_id_path: str = "$.requestId") -> tasks.LambdaInvoke:
    task = tasks.LambdaInvoke(
        scope, construct_id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at(request_id_path), "reason": reason}),
        output_path="$.Payload",
    )
    # Summary is idempotent: a retry rewrites the same summary and finds the row closed.
    task.add_retry(errors=["States.TaskFailed"], max_attempts=4, interval=Duration.seconds(2), backoff_rate=2)
    return task


class FanInWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, counter_table: dynamodb.ITable,
                 results_table: dynamodb.ITable, artifacts_bucket: s3.IBucket,
                 bus: events.IEventBus, retention_seconds: int) -> None:
        super().__init__(scope, construct_id)
        self.summary_function: lambda_.Function = python_function(
            self, "SummaryFunction",
            module="summary",
            description="fanflow: aggregates a finished request and publishes its summary",
            timeout_seconds=c.SUMMARY_TIMEOUT_SECONDS,
            memory_mb=1024,
            environment={
                c.ENV_COUNTER_TABLE: counter_table.table_name,
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_EVENTBUS_NAME: bus.event_bus_name,
                c.ENV_RETENTION_SECONDS: str(retention_seconds),
            },
        )
        counter_table.grant(self.summary_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        results_table.grant(self.summary_function, "dynamodb:Query", "dynamodb:UpdateItem")
        artifacts_bucket.grant_read(self.summary_function, "manifests/*")
        artifacts_bucket.grant_put(self.summary_function, "summaries/*")
        bus.grant_put_events_to(self.summary_function)

        self.state_machine = state_machine(
            self, "Increment",
            definition=self._definition(counter_table, results_table),
            comment="fanflow fan-in: count one completed case exactly once; summarize after the last",
        )

    def _definition(self, counter_table: dynamodb.ITable, results_table: dynamodb.ITable) -> sfn.IChainable:
        # The rule delivers the whole event (see EventRouting). Every completion carries its
        # requestId, caseId, state, error ("" when none) and the counter attribute it adds to
        # (constants.DETAIL_COUNT_AS), so counting reads them straight from the event: a
        # completion without them fails here, visibly, instead of being counted wrongly.
        request_id, case_id = "$.detail.requestId", "$.detail.request.caseId"

        # One transaction: mark the case counted (only once) and add it to the request's
        # counts (only while the request is open). A duplicate delivery, or a completion for
        # a closed or unknown request, cancels the transaction and changes nothing.
        count = tasks.CallAwsService(
            self, "CountCase",
            service="dynamodb",
            action="transactWriteItems",
            iam_action="dynamodb:UpdateItem",  # a transaction is authorised per item action
            iam_resources=[counter_table.table_arn, results_table.table_arn],
            parameters={"TransactItems": [
                {"Update": {
                    "TableName": results_table.table_name,
                    "Key": {c.ATTR_REQUEST_ID: {"S.$": request_id}, c.ATTR_CASE_ID: {"S.$": case_id}},
                    "UpdateExpression": "SET #outcome = :state, #outcomeError = :error",
                    "ConditionExpression": "attribute_not_exists(#outcome)",
                    "ExpressionAttributeNames": {"#outcome": c.ATTR_OUTCOME, "#outcomeError": c.ATTR_OUTCOME_ERROR},
                    "ExpressionAttributeValues": {":state": {"S.$": "$.detail.state"},
                                                  ":error": {"S.$": "$.detail.error"}},
                }},
                {"Update": {
                    "TableName": counter_table.table_name,
                    "Key": {c.ATTR_REQUEST_ID: {"S.$": request_id}},
                    "UpdateExpression": "ADD #counter :one, #outcomeCounter :one",
                    "ConditionExpression": "#status = :running",
                    "ExpressionAttributeNames": {"#counter": c.ATTR_COUNTER, "#status": c.ATTR_STATUS,
                                                 "#outcomeCounter.$": f"$.detail.{c.DETAIL_COUNT_AS}"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":running": {"S": c.STATUS_RUNNING}},
                }},
            ]},
            result_path=sfn.JsonPath.DISCARD,
        )
        count.add_retry(errors=DDB_TRANSIENT_ERRORS, max_attempts=6, interval=Duration.seconds(1),
                        backoff_rate=2, jitter_strategy=sfn.JitterType.FULL)

        claim = tasks.DynamoUpdateItem(
            self, "ClaimSummary",
            table=counter_table,
            key=request_key(request_id),
            update_expression="SET #status = :summarizing",
            condition_expression="#status = :running AND #counter >= #target",
            expression_attribute_names={"#status": c.ATTR_STATUS, "#counter": c.ATTR_COUNTER,
                                        "#target": c.ATTR_TARGET},
            expression_attribute_values={
                ":summarizing": tasks.DynamoAttributeValue.from_string(c.STATUS_SUMMARIZING),
                ":running": tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        not_last = sfn.Succeed(self, "NotLastCase", comment="Counted; other cases are still running")
        claim.add_catch(not_last, errors=["DynamoDB.ConditionalCheckFailedException"], result_path="$.claimError")

        # A cancelled transaction is either final (a condition failed: duplicate, or request
        # closed) or a conflict with a concurrent transaction on the counter row (retry).
        # After a duplicate, still try the claim: the first delivery may have counted the last
        # case and then lost its own claim.
        backoff = sfn.Wait(self, "BackOffOnConflict", time=sfn.WaitTime.duration(Duration.seconds(1)))
        cancelled = sfn.Choice(self, "ConditionFailed?").when(
            sfn.Condition.string_matches("$.countError.Cause", "*ConditionalCheckFailed*"), claim
        ).otherwise(backoff.next(count))
        count.add_catch(cancelled, errors=["DynamoDb.TransactionCanceledException"], result_path="$.countError")

        count.next(claim)
        claim.next(summary_invocation(self, "RunSummary", self.summary_function, c.REASON_COMPLETED,
                                      request_id_path=request_id))
        return count
