"""Fan-out: the PreProcess workflow validates a request, opens its counter row once, emits one
event per case in chunks, then closes the request at its deadline if it is still open.

Prepare stores the request's cases in S3 in chunks; the fan-out is a Distributed Map over the
chunk numbers, one Standard child execution per chunk (at most `fan_out_concurrency` at once:
EventBridge's PutEvents quota, constants.FANOUT_MAX_CONCURRENCY). The state carries chunk
numbers, never cases, and the chunks' own histories are their child executions', so PreProcess's
history holds a Map Run whatever the request's size, far from the 25,000-event limit. Each
chunk has its own failure handling, so one chunk that cannot be emitted never stops the
others: Emit resumes a chunk from the cases not yet accepted after a backoff of seconds (with
jitter), and gives up the cases still refused after its last attempt, lowering the request's
target so that it closes as soon as the emitted cases are counted, with the fan-out failure in
its summary; the execution then ends FAILED (FanOutFailed), which the monitoring alarms on, as
it does on the CasesNotEmitted metric Emit writes at once.

At the deadline, PreProcess claims the request (RUNNING, or SUMMARIZING under a stale claim:
a Summary that ran its retries out) and runs Summary. A fresh claim means a Summary is running:
PreProcess waits and tries again, at the times Prepare planned (claimSlots), so that it knows a
lower bound of the time without a clock of its own.

A redrive (`{"redrive": {"requestId", "failed", "timedOut", "deadlineSeconds"}}` as the input)
runs the same fan-out and close for the next attempt of a closed request: the Lifecycle function
resets the cases it takes up and writes them in chunks (lambda_fns/lifecycle.py) instead of
Prepare and OpenRequest. The Cancel workflow (infra/components/lifecycle.py) stops the
execution that runs a request's current attempt: the counter row names it."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import (
    DYNAMODB_CONDITION_FAILED,
    lambda_task,
    python_function,
    request_key,
    retry_dynamodb_transients,
    state_machine,
)
from infra.components.grants import grant_put_events
from infra.components.summary import summary_task
from lambda_fns import constants as c

FAN_OUT_FAILED = "FanOutFailed"  # the error PreProcess ends with when a chunk was lost
# What each fan-out chunk ends as (the Map's result, one word per chunk).
CHUNK_EMITTED = "EMITTED"
CHUNK_LOST = "LOST"
# Prepare reads a request of up to MAX_REFERENCED_REQUEST_BYTES whole, then holds its cases
# (about ten times their JSON in Python): the memory it gets, and the CPU that comes with it.
PREPARE_MEMORY_MB = 3008
PREPARE_TIMEOUT_SECONDS = 300
# A redrive reads every results row of its request (a million at most) and resets those it takes up.
LIFECYCLE_MEMORY_MB = 1769
LIFECYCLE_TIMEOUT_SECONDS = 900


class FanOutWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, counter_table: dynamodb.ITable,
                 results_table: dynamodb.ITable, artifacts_bucket: s3.IBucket, bus: events.IEventBus,
                 summary_function: lambda_.IFunction, retention_seconds: int,
                 compute_concurrency: int = c.ACCOUNT_LAMBDA_CONCURRENCY,
                 chunk_cases: int = c.FANOUT_CHUNK_CASES,
                 fan_out_concurrency: int = c.FANOUT_MAX_CONCURRENCY,
                 request_buckets: Sequence[str] = ()) -> None:
        super().__init__(scope, construct_id)
        self.fan_out_concurrency = fan_out_concurrency
        self.prepare_function = python_function(
            self, "PrepareFunction",
            module="prepare",
            description="fanflow: validates a request, stores its cases in chunks and plans its fan-out",
            timeout_seconds=PREPARE_TIMEOUT_SECONDS,
            memory_mb=PREPARE_MEMORY_MB,
            environment={
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_RETENTION_SECONDS: str(retention_seconds),
                c.ENV_COMPUTE_CONCURRENCY: str(compute_concurrency),
                c.ENV_CHUNK_CASES: str(chunk_cases),
                c.ENV_FANOUT_CONCURRENCY: str(fan_out_concurrency),
            },
        )
        # Requests stored by the client, and those in the buckets the deployment names.
        # (GetObject only: Prepare reads the one object a reference names, and lists nothing.)
        self.prepare_function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[artifacts_bucket.arn_for_objects(f"{c.REQUESTS_PREFIX}*")]))
        if request_buckets:
            partition = Stack.of(self).partition
            self.prepare_function.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[f"arn:{partition}:s3:::{bucket}/*" for bucket in request_buckets]))
        artifacts_bucket.grant_put(self.prepare_function, f"{c.MANIFESTS_PREFIX}*")
        artifacts_bucket.grant_put(self.prepare_function, f"{c.CHUNKS_PREFIX}*")
        self.lifecycle_function = python_function(
            self, "LifecycleFunction",
            module="lifecycle",
            description="fanflow: cancels a running request, or resets and re-chunks the cases a redrive takes up",
            timeout_seconds=LIFECYCLE_TIMEOUT_SECONDS,
            memory_mb=LIFECYCLE_MEMORY_MB,
            environment={
                c.ENV_COUNTER_TABLE: counter_table.table_name,
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_COMPUTE_CONCURRENCY: str(compute_concurrency),
                c.ENV_CHUNK_CASES: str(chunk_cases),
            },
        )
        # The counter row (claim, attempt, reopen); the results rows it resets or creates; the
        # manifest and the request's chunks it reads; the redrive's chunks it writes.
        counter_table.grant(self.lifecycle_function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        results_table.grant(self.lifecycle_function, "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem")
        self.lifecycle_function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[artifacts_bucket.arn_for_objects(f"{c.MANIFESTS_PREFIX}*"),
                                                 artifacts_bucket.arn_for_objects(f"{c.CHUNKS_PREFIX}*")]))
        artifacts_bucket.grant_put(self.lifecycle_function, f"{c.CHUNKS_PREFIX}*")
        self.emit_function = python_function(
            self, "EmitFunction",
            module="emit",
            description="fanflow: registers and puts one fan-out chunk on the bus, ten events per call",
            timeout_seconds=c.FANOUT_TIMEOUT_SECONDS,
            environment={
                c.ENV_EVENTBUS_NAME: bus.event_bus_name,
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_COUNTER_TABLE: counter_table.table_name,
                c.ENV_ARTIFACTS_BUCKET: artifacts_bucket.bucket_name,
                c.ENV_FANOUT_ATTEMPTS: str(c.FANOUT_ATTEMPTS),
                c.ENV_FANOUT_BACKOFF_BASE_SECONDS: str(c.FANOUT_BACKOFF_BASE_SECONDS),
                c.ENV_FANOUT_BACKOFF_MAX_SECONDS: str(c.FANOUT_BACKOFF_MAX_SECONDS),
            },
        )
        grant_put_events(self.emit_function, bus, source=c.PREPROCESS_SOURCE, detail_type=c.CASE_DETAIL_TYPE)
        self.emit_function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[artifacts_bucket.arn_for_objects(f"{c.CHUNKS_PREFIX}*")]))
        # Pending rows for its chunk (and, after a crash, which exist); a given-up case's row.
        results_table.grant(self.emit_function, "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
                            "dynamodb:DeleteItem")
        # A given-up chunk lowers the target and may claim the request for Summary; the row says
        # whether the request still runs (a cancel stops the fan-out).
        counter_table.grant(self.emit_function, "dynamodb:UpdateItem", "dynamodb:GetItem")

        self.state_machine = state_machine(
            self, "PreProcess",
            definition=self._definition(counter_table, summary_function),
            comment="fanflow fan-out: open the request, emit its cases, close it at its deadline",
            log_level=sfn.LogLevel.ALL,  # one execution per request: its full history is worth its volume
        )

    def _definition(self, counter_table: dynamodb.ITable, summary_function: lambda_.IFunction) -> sfn.IChainable:
        prepare = lambda_task(self, "Prepare", function=self.prepare_function,
                              payload=sfn.TaskInput.from_json_path_at("$"))
        rejected = sfn.Fail(self, "RequestRejected", error="InvalidRequest", cause_path="$.error.Cause")
        prepare.add_catch(self._count_rejection("CountInvalidRequest", rejected), errors=["RequestError"],
                          result_path="$.error")

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
                c.ATTR_EXPECTED: number(sfn.JsonPath.string_at("$.target")),
                c.ATTR_STATUS: tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
                c.ATTR_CREATED_AT: number(sfn.JsonPath.string_at("$.createdAt")),
                c.ATTR_DEADLINE: number(sfn.JsonPath.string_at("$.deadline")),
                c.ATTR_EXPIRES_AT: number(sfn.JsonPath.string_at("$.expiresAt")),
                c.ATTR_MANIFEST_KEY: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.manifestKey")),
                c.ATTR_SHARDS: number(sfn.JsonPath.string_at("$.shards")),
                c.ATTR_CHUNKS: number(sfn.JsonPath.string_at("$.chunkCount")),
                c.ATTR_CASES: number(sfn.JsonPath.string_at("$.target")),
                c.ATTR_CHUNK_PREFIX: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.chunkPrefix")),
                c.ATTR_CHUNK_CASES: number(sfn.JsonPath.string_at("$.chunkCases")),
                c.ATTR_ATTEMPT: tasks.DynamoAttributeValue.from_number(1),
                # The execution running the request's attempt: the one a cancel stops.
                c.ATTR_EXECUTION_ARN: tasks.DynamoAttributeValue.from_string(sfn.JsonPath.execution_id),
            },
            # A re-submitted requestId must never reset the request in flight.
            condition_expression="attribute_not_exists(#requestId)",
            expression_attribute_names={"#requestId": c.ATTR_REQUEST_ID},
            result_path=sfn.JsonPath.DISCARD,
        )
        # A throttled or failed write is retried: a request that fails here leaves only its manifest
        # (which expires), and its execution name, which the client works around (FanflowClient.start).
        retry_dynamodb_transients(register)
        exists = sfn.Fail(self, "RequestAlreadyExists", error="RequestAlreadyExists",
                          cause="a request with this requestId exists; it was left unchanged")
        register.add_catch(self._count_rejection("CountDuplicateRequest", exists), errors=[DYNAMODB_CONDITION_FAILED],
                           result_path="$.error")

        # One child execution per chunk; Standard children: exactly once, and a chunk's backoff
        # may outlast an Express execution's five minutes.
        fan_out = sfn.DistributedMap(
            self, "FanOut",
            items_path="$.chunks",
            item_selector={
                "requestId": sfn.JsonPath.string_at("$.requestId"),
                "chunk": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "chunkPrefix": sfn.JsonPath.string_at("$.chunkPrefix"),
                c.DETAIL_SHARDS: sfn.JsonPath.string_at("$.shards"),
                "deadline": sfn.JsonPath.string_at("$.deadline"),
                "expiresAt": sfn.JsonPath.string_at("$.expiresAt"),
                "requestAttempt": sfn.JsonPath.string_at("$.requestAttempt"),
                "attempt": 0,
                "pending": [],
                "registered": sfn.JsonPath.string_at("$.registered"),
            },
            max_concurrency=self.fan_out_concurrency,
            map_execution_type=sfn.StateMachineType.STANDARD,
            label="FanOutChunks",
            result_path="$.fanOut",  # one word per chunk: EMITTED or LOST
        )
        fan_out.item_processor(self._chunk(counter_table, summary_function))

        # Only what the close needs from here on.
        keep = sfn.Pass(self, "KeepRequestRef", parameters={
            "requestId": sfn.JsonPath.string_at("$.requestId"),
            "claimSlots": sfn.JsonPath.string_at("$.claimSlots"),
            "claim": {"attempt": 0},
            "fanOutFailed": sfn.JsonPath.array_contains(sfn.JsonPath.list_at("$.fanOut"), CHUNK_LOST),
        })
        prepare.next(register).next(fan_out).next(keep).next(self._close(counter_table, summary_function))
        # A redrive: the Lifecycle function takes the request's next attempt and writes its chunks.
        redrive = lambda_task(self, "Redrive", function=self.lifecycle_function, payload=sfn.TaskInput.from_object({
            "action": "redrive",
            "redrive": sfn.JsonPath.object_at("$.redrive"),
            "executionArn": sfn.JsonPath.execution_id,
        }))
        refused = sfn.Fail(self, "RedriveRefused", error="RedriveRefused", cause_path="$.error.Cause")
        redrive.add_catch(self._count_rejection("CountRefusedRedrive", refused), errors=["RedriveRefused"],
                          result_path="$.error")
        redrive.next(fan_out)
        return (sfn.Choice(self, "Redrive?")
                .when(sfn.Condition.is_present("$.redrive"), redrive)
                .otherwise(prepare))

    def _count_rejection(self, construct_id: str, then: sfn.Fail) -> sfn.IChainable:
        """A rejected request ends PreProcess FAILED, which is an expected outcome: it counts itself
        in RequestsRejected first, so that the failure alarm can leave it out."""
        task = tasks.CallAwsService(
            self, construct_id,
            service="cloudwatch", action="putMetricData", iam_action="cloudwatch:PutMetricData",
            iam_resources=["*"],  # PutMetricData names no resource; the grant is held to fanflow's namespace
            parameters={"Namespace": c.METRICS_NAMESPACE, "MetricData": [{
                "MetricName": c.METRIC_REQUESTS_REJECTED, "Value": 1, "Unit": "Count",
                "Dimensions": [{"Name": c.DIMENSION_SERVICE, "Value": c.SERVICE_NAME}],
            }]},
            result_path=sfn.JsonPath.DISCARD,
        )
        for statement in task._task_policies or []:
            statement.add_condition("StringEquals", {"cloudwatch:namespace": c.METRICS_NAMESPACE})
        task.add_retry(errors=["States.TaskFailed"], max_attempts=3, interval=Duration.seconds(1), backoff_rate=2)
        task.add_catch(then, errors=["States.ALL"], result_path="$.metricError")  # never changes the outcome
        return task.next(then)

    def _chunk(self, counter_table: dynamodb.ITable, summary_function: lambda_.IFunction) -> sfn.IChainable:
        """One chunk: emit, resume what was not accepted after a backoff, and end in EMITTED or LOST."""
        chunk_input = {
            "requestId": sfn.JsonPath.string_at("$.requestId"),
            "chunk": sfn.JsonPath.string_at("$.chunk"),
            "chunkPrefix": sfn.JsonPath.string_at("$.chunkPrefix"),
            c.DETAIL_SHARDS: sfn.JsonPath.string_at(f"$.{c.DETAIL_SHARDS}"),
            "requestAttempt": sfn.JsonPath.string_at("$.requestAttempt"),
            "attempt": sfn.JsonPath.string_at("$.attempt"),
            "pending": sfn.JsonPath.string_at("$.pending"),
        }
        emit = lambda_task(self, "EmitChunk", function=self.emit_function, payload=sfn.TaskInput.from_object({
            **chunk_input,
            "deadline": sfn.JsonPath.string_at("$.deadline"),
            "expiresAt": sfn.JsonPath.string_at("$.expiresAt"),
            "registered": sfn.JsonPath.string_at("$.registered"),
            # Nonzero when Step Functions retries a crashed invocation: some cases may be registered.
            "retryCount": sfn.JsonPath.string_at("$$.State.RetryCount"),
        }))
        # A function error (a crash, a timeout, a DynamoDB error while registering) is retried too.
        emit.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(2), max_attempts=3, backoff_rate=2,
                       jitter_strategy=sfn.JitterType.FULL)
        backoff = sfn.Wait(self, "BackOffBeforeResuming", time=sfn.WaitTime.seconds_path("$.waitSeconds"))
        emitted = sfn.Pass(self, "ChunkEmitted", result=sfn.Result.from_string(CHUNK_EMITTED))
        lost = sfn.Pass(self, "ChunkLost", result=sfn.Result.from_string(CHUNK_LOST))
        # The chunk's loss closed the request (every emitted case was counted already): summarize.
        summarize = summary_task(self, "SummarizeFanOutFailure", summary_function, c.REASON_FAN_OUT_FAILED)
        summarize.add_catch(lost, errors=["States.ALL"], result_path="$.summaryError")  # the deadline retries it
        summarize.next(lost)

        def outcome(construct_id: str) -> sfn.Choice:
            return (sfn.Choice(self, construct_id)
                    .when(sfn.Condition.boolean_equals("$.claimed", True), summarize)
                    .when(sfn.Condition.number_greater_than("$.lost", 0), lost)
                    .otherwise(emitted))

        emit.next(sfn.Choice(self, "ChunkPending?")
                  .when(sfn.Condition.number_greater_than("$.remaining", 0), backoff.next(emit))
                  .otherwise(outcome("ChunkOutcome?")))

        # Emit itself failed for good: give the chunk up (the rows of the cases it had not emitted
        # surely, and their share of the target).
        abandon = lambda_task(self, "AbandonChunk", function=self.emit_function, payload=sfn.TaskInput.from_object({
            **chunk_input,
            "abandon": True,
            "error": sfn.JsonPath.string_at("$.emitError.Error"),
        }))
        emit.add_catch(abandon, errors=["States.ALL"], result_path="$.emitError")
        abandon.next(outcome("AbandonOutcome?"))
        # Not even that: record why on the counter row; the request closes at its deadline.
        record = tasks.DynamoUpdateItem(
            self, "RecordFanOutError",
            table=counter_table,
            key=request_key(),
            update_expression="SET #error = if_not_exists(#error, :error)",
            condition_expression="#status = :running",
            expression_attribute_names={"#error": c.ATTR_FAN_OUT_ERROR, "#status": c.ATTR_STATUS},
            expression_attribute_values={
                ":error": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.format(
                    "fan-out: chunk {} could not be emitted: {}", sfn.JsonPath.string_at("$.chunk"),
                    sfn.JsonPath.string_at("$.abandonError.Error"))),
                ":running": tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry_dynamodb_transients(record)
        record.add_catch(lost, errors=["States.ALL"], result_path="$.recordError")
        abandon.add_catch(record, errors=["States.ALL"], result_path="$.abandonError")
        record.next(lost)
        return emit

    def _close(self, counter_table: dynamodb.ITable, summary_function: lambda_.IFunction) -> sfn.IChainable:
        """At the deadline (claim slot 0) and, while another claim is fresh, at the later slots:
        claim the request and summarize it as timed out, unless it is closed."""
        slot = sfn.Pass(self, "NextClaimSlot", result_path="$.claim", parameters={
            "attempt": sfn.JsonPath.number_at("$.claim.attempt"),
            "slot": sfn.JsonPath.array_get_item(sfn.JsonPath.list_at("$.claimSlots"),
                                                sfn.JsonPath.number_at("$.claim.attempt")),
        })
        wait = sfn.Wait(self, "AwaitDeadline", time=sfn.WaitTime.timestamp_path("$.claim.slot.atIso"))
        number = tasks.DynamoAttributeValue.number_from_string
        claim = tasks.DynamoUpdateItem(
            self, "ClaimTimeout",
            table=counter_table,
            key=request_key(),
            update_expression="SET #status = :summarizing, #claimedAt = :at",
            # A SUMMARIZING row is re-claimed only when its claim is stale: its Summary has run its
            # retries out. (slot.at is at most now: the Wait ended at it.)
            condition_expression="#status = :running OR (#status = :summarizing AND "
                                 "(attribute_not_exists(#claimedAt) OR #claimedAt < :staleBefore))",
            expression_attribute_names={"#status": c.ATTR_STATUS, "#claimedAt": c.ATTR_CLAIMED_AT},
            expression_attribute_values={
                ":summarizing": tasks.DynamoAttributeValue.from_string(c.STATUS_SUMMARIZING),
                ":running": tasks.DynamoAttributeValue.from_string(c.STATUS_RUNNING),
                ":at": number(sfn.JsonPath.string_at("$.claim.slot.at")),
                ":staleBefore": number(sfn.JsonPath.string_at("$.claim.slot.staleBefore")),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry_dynamodb_transients(claim)
        read = tasks.DynamoGetItem(
            self, "ReadRequestStatus",
            table=counter_table,
            key=request_key(),
            consistent_read=True,  # the whole row (a few small attributes): status and publishedAt are read
            result_path="$.row",
        )
        retry_dynamodb_transients(read)
        claim.add_catch(read, errors=[DYNAMODB_CONDITION_FAILED], result_path="$.claimError")

        advance = sfn.Pass(self, "CountClaimAttempt", result_path="$.claim", parameters={
            "attempt": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.claim.attempt"), 1),
        })
        exhausted = sfn.Fail(self, "ClaimAttemptsExhausted", error="ClaimAttemptsExhausted",
                             cause="the request stayed claimed by a Summary for longer than a stale claim lasts")
        summarize = summary_task(self, "SummarizeTimedOut", summary_function, c.REASON_TIMED_OUT)
        # Summary failed after its retries: the claim goes stale, and a later slot takes it over.
        summarize.add_catch(advance, errors=["States.ALL"], result_path="$.summaryError")

        ended = (sfn.Choice(self, "FanOutFailed?")
                 .when(sfn.Condition.boolean_equals("$.fanOutFailed", True),
                       sfn.Fail(self, FAN_OUT_FAILED, error=FAN_OUT_FAILED,
                                cause="a fan-out chunk was lost: the request's summary says which cases and why"))
                 .otherwise(sfn.Succeed(self, "RequestClosed")))
        missing = sfn.Fail(self, "CounterRowMissing", error="CounterRowMissing",
                           cause="the request's counter row is gone at its deadline")
        # Closed, but the run that closed it did not store or publish everything (it failed after
        # the close): Summary completes it.
        finish = summary_task(self, "FinishSummary", summary_function, c.REASON_TIMED_OUT)
        finish.add_catch(advance, errors=["States.ALL"], result_path="$.summaryError")
        finish.next(ended)
        held = (sfn.Choice(self, "ClaimHeld?")
                .when(sfn.Condition.not_(sfn.Condition.is_present("$.row.Item")), missing)
                .when(sfn.Condition.or_(
                    sfn.Condition.string_equals(f"$.row.Item.{c.ATTR_STATUS}.S", c.STATUS_SUMMARIZING),
                    sfn.Condition.string_equals(f"$.row.Item.{c.ATTR_STATUS}.S", c.STATUS_RUNNING)), advance)
                .when(sfn.Condition.not_(sfn.Condition.is_present(f"$.row.Item.{c.ATTR_PUBLISHED_AT}")), finish)
                .otherwise(ended))
        read.next(held)
        advance.next(sfn.Choice(self, "ClaimAttemptsLeft?")
                     .when(sfn.Condition.number_less_than("$.claim.attempt", c.CLAIM_ATTEMPTS), slot)
                     .otherwise(exhausted))
        slot.next(wait).next(claim).next(summarize).next(ended)
        return slot

