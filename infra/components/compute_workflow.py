"""A Step Functions compute target: one Standard workflow execution per case. It reads the
case from the fan-out event, runs the computing step (a Lambda function), and puts the
completion event itself through the optimized EventBridge integration; a step that fails
for good still ends in a FAILED completion, so the request is counted either way."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import python_function, state_machine
from lambda_fns import constants as c

# What the optimized PutEvents integration raises when EventBridge refuses the entry, or fails.
PUT_EVENTS_ERRORS = ["EventBridge.FailedEntry", "EventBridge.AWSEventBridgeException", "States.Timeout"]


class ComputeWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus,
                 results_table: dynamodb.ITable, compute_seconds: float, retention_seconds: int,
                 compute_type: str = c.COMPUTE_TYPE_WORKFLOW) -> None:
        super().__init__(scope, construct_id)
        self.compute_type = compute_type
        self.step_function: lambda_.Function = python_function(
            self, "StepFunction",
            module="workflow_step",
            description="fanflow: the computing step of the compute workflow",
            timeout_seconds=c.COMPUTE_TIMEOUT_SECONDS,
            environment={
                c.ENV_RESULTS_TABLE: results_table.table_name,
                c.ENV_COMPUTE_SECONDS: str(compute_seconds),
                c.ENV_RETENTION_SECONDS: str(retention_seconds),
                c.ENV_COMPUTE_TYPE: compute_type,
            },
        )
        results_table.grant(self.step_function, "dynamodb:PutItem")
        self.state_machine = state_machine(
            self, "Workflow",
            definition=self._definition(bus),
            comment="fanflow compute target: compute one case in steps, then put its completion event",
        )

    def _definition(self, bus: events.IEventBus) -> sfn.IChainable:
        # The rule delivers the whole event (no InputPath: LocalStack 4.14 cannot start a state
        # machine with it); the execution keeps only the case reference.
        read = sfn.Pass(self, "ReadCase", parameters={
            "requestId": sfn.JsonPath.string_at("$.detail.requestId"),
            "request": sfn.JsonPath.object_at("$.detail.request"),
        })
        compute = tasks.LambdaInvoke(
            self, "ComputeCase",
            lambda_function=self.step_function,
            payload=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at("$.requestId"),
                                               "request": sfn.JsonPath.object_at("$.request")}),
            result_selector={"result": sfn.JsonPath.object_at("$.Payload")},  # {"state", "error"?}
            result_path="$.step",
        )
        compute.add_retry(errors=["States.TaskFailed"], max_attempts=2, interval=Duration.seconds(1), backoff_rate=2)

        def complete(construct_id: str, state: str, error: str) -> tasks.EventBridgePutEvents:
            detail: dict[str, object] = {"requestId": sfn.JsonPath.string_at("$.requestId"),
                                         "request": sfn.JsonPath.object_at("$.request"), "state": state,
                                         "error": error, c.DETAIL_COUNT_AS: c.COUNT_AS[state]}
            task = tasks.EventBridgePutEvents(self, construct_id, entries=[tasks.EventBridgePutEventsEntry(
                event_bus=bus, source=c.COMPUTE_SOURCE, detail_type=c.COMPLETION_DETAIL_TYPE,
                detail=sfn.TaskInput.from_object(detail),
            )], result_path=sfn.JsonPath.DISCARD)
            # A completion that is not put leaves the request waiting for its deadline.
            task.add_retry(errors=PUT_EVENTS_ERRORS, max_attempts=6, interval=Duration.seconds(1), backoff_rate=2)
            return task

        succeeded = complete("PutCompletion", c.CASE_SUCCEEDED, "")
        failed = complete("PutFailedCompletion", c.CASE_FAILED, sfn.JsonPath.string_at("$.step.result.error"))
        # The step ran: the computation succeeded, or raised and the step reported its error.
        outcome = sfn.Choice(self, "CaseFailed?").when(
            sfn.Condition.string_equals("$.step.result.state", c.CASE_FAILED), failed,
        ).otherwise(succeeded)
        # The step itself failed for good (a crash, a timeout, throttling after the retries).
        crashed = sfn.Pass(self, "DescribeStepFailure", parameters={
            "requestId": sfn.JsonPath.string_at("$.requestId"),
            "request": sfn.JsonPath.object_at("$.request"),
            "step": {"result": {
                "state": c.CASE_FAILED,
                "error": sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at("$.stepError.Error"),
                                             sfn.JsonPath.string_at("$.stepError.Cause")),
            }},
        })
        compute.add_catch(crashed, errors=["States.ALL"], result_path="$.stepError")
        crashed.next(failed)
        return read.next(compute).next(outcome)
