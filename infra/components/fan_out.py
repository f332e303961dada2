"""Fan-out: the PreProcess workflow validates a request, opens its counter row once,
emits one event per case in batches, then waits for the request's deadline and, if the
request is still open, closes it as timed out."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.fan_in import request_key, summary_invocation
from infra.components.functions import python_function, state_machine
from lambda_fns import constants as c


class FanOutWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, counter_table: dynamodb.ITable,
                 artifacts_bucket: s3.IBucket, bus: events.IEventBus,
                 summary_function: lambda_.IFunction, retention_seconds: int,
                 batch_size: int = c.FANOUT_BATCH_SIZE,
                 default_deadline_seconds: int = c.DEFAULT_DEADLINE_SECONDS) -> None:
        super().__init__(scope, construct_id)
        self.prepare_function = python_function(
            self, "PrepareFunction",
            module="prepare",
            description="fanflow: validates a request and plans its fan-out batches",
            timeout_seconds=30,
            memory_mb=512,
            environment={
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_RETENTION_SECONDS: str(retention_seconds),
                c.ENV_DEFAULT_DEADLINE_SECONDS: str(default_deadline_seconds),
                c.ENV_BATCH_SIZE: str(batch_size),
            },
        )
        artifacts_bucket.grant_put(self.prepare_function, "manifests/*")
        self.emit_function = python_function(
            self, "EmitFunction",
            module="emit",
            description="fanflow: puts one fan-out batch on the bus, ten events per call",
            timeout_seconds=c.FANOUT_TIMEOUT_SECONDS,
            environment={c.ENV_EVENTBUS_NAME: bus.event_bus_name},
        )
        bus.grant_put_events_to(self.emit_function)

        self.state_machine = state_machine(
            self, "PreProcess",
            definition=self._definition(counter_table, summary_function),
            comment="fanflow fan-out: open the request, emit its cases, close it at its deadline",
        )

    def _definition(self, counter_table: dynamodb.ITable, summary_function: lambda_.IFunction) -> sfn.IChainable:
        prepare = tasks.LambdaInvoke(
            self, "Prepare", lambda_function=self.prepare_function,
            payload=sfn.TaskInput.from_json_path_at("$"), output_path="$.Payload",
        )
        rejected = sfn.Fail(self, "RequestRejected", error="InvalidRequest", cause_path="$.error.Cause")
        prepare.add_catch(rejected, errors=["RequestError"], result_path="$.error")

        number = tasks.DynamoAttributeValue.number_from_string
        register = tasks.DynamoPutItem(
            self, "OpenRequest",
            table=counter_table,
            item={
                c.ATTR_REQUEST_ID: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.requestId")),
                c.ATTR_COUNTER: tasks.DynamoAttributeValue.from_number(0),
                c.ATTR_SUCCEEDED: tasks.DynamoAttributeValue.from_number(0),
                c.ATTR_FAILED: tasks.DynamoAttributeValue.from_number(0),
                c.ATTR_COUNTER_WRITES: tasks.DynamoAttributeValue.from_number(1),  # this one
                c.ATTR_TARGET: number(sfn.JsonPath.string_at("$.target")),
                c.ATTR_STATUS: tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
                c.ATTR_CREATED_AT: number(sfn.JsonPath.string_at("$.createdAt")),
                c.ATTR_DEADLINE: number(sfn.JsonPath.string_at("$.deadline")),
                c.ATTR_EXPIRES_AT: number(sfn.JsonPath.string_at("$.expiresAt")),
                c.ATTR_MANIFEST_KEY: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.manifestKey")),
            },
            # A re-submitted requestId must never reset the request in flight.
            condition_expression="attribute_not_exists(#requestId)",
            expression_attribute_names={"#requestId": c.ATTR_REQUEST_ID},
            result_path=sfn.JsonPath.DISCARD,
        )
        exists = sfn.Fail(self, "RequestAlreadyExists", error="RequestAlreadyExists",
                          cause="a request with this requestId exists; it was left unchanged")
        register.add_catch(exists, errors=["DynamoDB.ConditionalCheckFailedException"], result_path="$.error")

        emit = tasks.LambdaInvoke(self, "EmitBatch", lambda_function=self.emit_function, output_path="$.Payload")
        emit.add_retry(errors=["States.TaskFailed"], max_attempts=3, interval=Duration.seconds(1), backoff_rate=2)
        fan_out = sfn.Map(
            self, "FanOut",
            items_path="$.batches",
            item_selector={"requestId": sfn.JsonPath.string_at("$.requestId"),
                           "cases": sfn.JsonPath.string_at("$$.Map.Item.Value")},
            max_concurrency=c.FANOUT_MAX_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
        )
        fan_out.item_processor(emit)
        # Only the request id and deadline are needed from here on; drop the batches.
        keep = sfn.Pass(self, "KeepRequestRef", parameters={
            "requestId": sfn.JsonPath.string_at("$.requestId"),
            "deadlineIso": sfn.JsonPath.string_at("$.deadlineIso"),
        })
        # A batch that could not be emitted is not retried forever: its cases time out.
        fan_out.add_catch(keep, errors=["States.ALL"], result_path="$.fanOutError")

        await_deadline = sfn.Wait(self, "AwaitDeadline", time=sfn.WaitTime.timestamp_path("$.deadlineIso"))
        claim_timeout = tasks.DynamoUpdateItem(
            self, "ClaimTimeout",
            table=counter_table,
            key=request_key(),
            update_expression="SET #status = :summarizing",
            # SUMMARIZING at the deadline means Summary failed after its retries: run it again.
            condition_expression="#status IN (:running, :summarizing)",
            expression_attribute_names={"#status": c.ATTR_STATUS},
            expression_attribute_values={
                ":summarizing": tasks.DynamoAttributeValue.from_string(c.STATUS_SUMMARIZING),
                ":running": tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        completed = sfn.Succeed(self, "CompletedBeforeDeadline")
        claim_timeout.add_catch(completed, errors=["DynamoDB.ConditionalCheckFailedException"],
                                result_path="$.claimError")

        return (prepare.next(register).next(fan_out).next(keep).next(await_deadline)
                .next(claim_timeout).next(summary_invocation(self, "SummarizeTimedOut", summary_function,
                                                             c.REASON_TIMED_OUT)))
