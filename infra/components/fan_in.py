"""Fan-in: completions wait in a buffer queue and are counted a batch at a time. A Lambda
event source mapping reads the queue in batches; for each batch its consumer runs one
synchronous Express execution of the Increment workflow, which counts the batch exactly
once (one DynamoDB transaction per request in the batch) and, for a request whose count
reached its target, claims it and starts Summary once."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.components.functions import (
    lambda_task,
    python_function,
    request_key,
    retry_dynamodb_transients,
    state_machine,
)
from infra.components.summary import grant_summary
from infra.fan_in_settings import check_batching
from lambda_fns import constants as c


class FanInWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, counter_table: dynamodb.ITable,
                 results_table: dynamodb.ITable, artifacts_bucket: s3.IBucket,
                 bus: events.IEventBus, batch_size: int = c.FAN_IN_BATCH_SIZE,
                 batch_window_seconds: int = c.FAN_IN_BATCH_WINDOW_SECONDS,
                 max_concurrency: int = c.FAN_IN_MAX_CONCURRENCY) -> None:
        super().__init__(scope, construct_id)
        check_batching(batch_size=batch_size, batch_window_seconds=batch_window_seconds,
                       max_concurrency=max_concurrency)
        self.summary_function: lambda_.Function = python_function(
            self, "SummaryFunction",
            module="summary",
            description="fanflow: aggregates a finished request and publishes its summary",
            timeout_seconds=c.SUMMARY_TIMEOUT_SECONDS,
            # A full vCPU: reading (and parsing) a million results rows is CPU-bound; what it holds
            # is bounded (lambda_fns/summary_model.py), plus a set of the caseIds it read.
            memory_mb=1769,
            environment={
                c.ENV_COUNTER_TABLE: counter_table.table_name,
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_EVENTBUS_NAME: bus.event_bus_name,
            },
        )
        grant_summary(self.summary_function, counter_table=counter_table, results_table=results_table,
                      artifacts_bucket=artifacts_bucket, bus=bus)

        self.count_function = python_function(
            self, "CountFunction",
            module="count_batch",
            description="fanflow: counts one batch of completed cases exactly once",
            timeout_seconds=c.FAN_IN_COUNT_TIMEOUT_SECONDS,
            environment={c.ENV_COUNTER_TABLE: counter_table.table_name,
                         c.ENV_RESULTS_TABLE: results_table.table_name},
        )
        # The counting transaction is authorised per item action (UpdateItem on each row).
        results_table.grant(self.count_function, "dynamodb:BatchGetItem", "dynamodb:UpdateItem")
        counter_table.grant(self.count_function, "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem")

        self.state_machine = state_machine(
            self, "Increment",
            definition=self._definition(counter_table),
            comment="fanflow fan-in: count one batch of completed cases exactly once; summarize finished requests",
            express=True,
        )
        NagSuppressions.add_resource_suppressions(self.state_machine, [NagPackSuppression(
            id="AwsSolutions-SF1",
            reason="One Express execution per fan-in batch: logging ALL events of every batch would be most of "
            "the stack's log volume; errors are logged, and each batch's outcome is in the consumer's logs.")])

        # Completions that could not be counted after their receives (or are not completions).
        self.dead_letter_queue = sqs.Queue(
            self, "CompletionDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self, "CompletionQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,  # EventBridge can send to SSE-SQS queues
            enforce_ssl=True,
            # Lambda's guidance for SQS event sources: at least six times the function timeout.
            visibility_timeout=Duration.seconds(6 * c.FAN_IN_CONSUMER_TIMEOUT_SECONDS),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=c.FAN_IN_MAX_RECEIVES),
        )
        self.consumer_function = python_function(
            self, "ConsumerFunction",
            module="fan_in_consumer",
            description="fanflow: reads the completion buffer a batch at a time and has Increment count it",
            timeout_seconds=c.FAN_IN_CONSUMER_TIMEOUT_SECONDS,
            environment={c.ENV_INCREMENT_ARN: self.state_machine.state_machine_arn},
        )
        self.state_machine.grant_start_sync_execution(self.consumer_function)
        self.queue.grant(self.consumer_function, "sqs:ChangeMessageVisibility")  # a shorter wait before a retry
        self.event_source = event_sources.SqsEventSource(
            self.queue,
            batch_size=batch_size,
            max_batching_window=Duration.seconds(batch_window_seconds) if batch_window_seconds else None,
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
        self.consumer_function.add_event_source(self.event_source)

    def _definition(self, counter_table: dynamodb.ITable) -> sfn.IChainable:
        count = lambda_task(
            self, "CountBatch", function=self.count_function,
            payload=sfn.TaskInput.from_object({"completions": sfn.JsonPath.list_at("$.completions")}),
        )

        # The batch that brings a request to its target claims it (RUNNING -> SUMMARIZING,
        # once) and starts Summary; a claim lost to a concurrent batch ends quietly.
        claim = tasks.DynamoUpdateItem(
            self, "ClaimSummary",
            table=counter_table,
            key=request_key(),
            update_expression="SET #status = :summarizing, #claimedAt = :claimedAt ADD #writes :one",
            condition_expression="#status = :running AND #counter >= #target",
            expression_attribute_names={"#status": c.ATTR_STATUS, "#counter": c.ATTR_COUNTER,
                                        "#target": c.ATTR_EXPECTED, "#claimedAt": c.ATTR_CLAIMED_AT,
                                        "#writes": c.ATTR_COUNTER_WRITES},
            expression_attribute_values={
                ":summarizing": tasks.DynamoAttributeValue.from_string(c.STATUS_SUMMARIZING),
                ":running": tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
                ":claimedAt": tasks.DynamoAttributeValue.number_from_string(sfn.JsonPath.string_at("$.claimedAt")),
                ":one": tasks.DynamoAttributeValue.from_number(1),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry_dynamodb_transients(claim)
        claimed_elsewhere = sfn.Succeed(self, "ClaimedElsewhere", comment="Another batch claimed it")
        claim.add_catch(claimed_elsewhere, errors=["DynamoDB.ConditionalCheckFailedException"],
                        result_path="$.claimError")
        # Asynchronously: an Express execution lasts at most five minutes, and Summary may take
        # as long. Lambda retries a failed Summary twice; a claim left behind is taken over at the
        # deadline once stale (constants.STALE_CLAIM_SECONDS).
        claim.next(lambda_task(
            self, "StartSummary", function=self.summary_function, invocation_type=tasks.LambdaInvocationType.EVENT,
            payload=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at("$.requestId"),
                                               "reason": c.REASON_COMPLETED}),
            output_path=None, result_path=sfn.JsonPath.DISCARD,
        ))
        summarize = sfn.Map(self, "SummarizeFinished", items_path="$.claims", result_path=sfn.JsonPath.DISCARD)
        summarize.item_processor(claim)
        done = sfn.Pass(self, "Counted", parameters={"failed": sfn.JsonPath.list_at("$.failed"),
                                                     "stats": sfn.JsonPath.object_at("$.stats")})
        return count.next(summarize).next(done)
