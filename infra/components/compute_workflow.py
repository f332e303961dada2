"""A Step Functions compute target: one Standard workflow execution per case. It reads the
case from the fan-out event, runs the computing step (a Lambda function), and puts the
completion event itself through the optimized EventBridge integration; a step that fails
for good still ends in a FAILED completion, so the request is counted either way. A case the
step does not compute (after its deadline, not in the request, counted already) ends the
execution without a completion."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import lambda_task, python_function, state_machine
from infra.components.grants import grant_result_writes, put_events_statement
from lambda_fns import constants as c

# The optimized PutEvents integration fails the task with this error when EventBridge refuses an
# entry (docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html). The name of an
# error of the call itself (throttling, say) is not documented: States.TaskFailed matches it.
EVENTBRIDGE_FAILED_ENTRY = "EventBridge.FailedEntry"


class ComputeWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus,
                 results_table: dynamodb.ITable, compute_seconds: float,
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
                c.ENV_COMPUTE_TYPE: compute_type,
            },
        )
        grant_result_writes(self.step_function, results_table)
        self._put_tasks: list[tasks.EventBridgePutEvents] = []
        definition = self._definition(bus)
        # The PutEvents grant CDK derives from the tasks, narrowed to completion events only.
        for task in self._put_tasks:
            for statement in task._task_policies or []:
                if "events:PutEvents" in statement.actions:
                    statement.add_conditions(put_events_statement(
                        bus, source=c.COMPUTE_SOURCE, detail_type=c.COMPLETION_DETAIL_TYPE).conditions)
        self.state_machine = state_machine(
            self, "Workflow",
            definition=definition,
            comment="fanflow compute target: compute one case in steps, then put its completion event",
        )

    def _definition(self, bus: events.IEventBus) -> sfn.IChainable:
        # The rule delivers the whole event (no InputPath: LocalStack 4.14 cannot start a state
        # machine with it); the execution keeps only the case reference.
        read = sfn.Pass(self, "ReadCase", parameters={
            "requestId": sfn.JsonPath.string_at("$.detail.requestId"),
            "request": sfn.JsonPath.object_at("$.detail.request"),
            c.DETAIL_DEADLINE: sfn.JsonPath.number_at(f"$.detail.{c.DETAIL_DEADLINE}"),
            c.DETAIL_SHARDS: sfn.JsonPath.number_at(f"$.detail.{c.DETAIL_SHARDS}"),
            c.DETAIL_ATTEMPT: sfn.JsonPath.number_at(f"$.detail.{c.DETAIL_ATTEMPT}"),
        })
        compute = lambda_task(
            self, "ComputeCase",
            function=self.step_function,
            payload=sfn.TaskInput.from_object({"requestId": sfn.JsonPath.string_at("$.requestId"),
                                               "request": sfn.JsonPath.object_at("$.request"),
                                               c.DETAIL_DEADLINE: sfn.JsonPath.number_at(f"$.{c.DETAIL_DEADLINE}"),
                                               c.DETAIL_SHARDS: sfn.JsonPath.number_at(f"$.{c.DETAIL_SHARDS}"),
                                               c.DETAIL_ATTEMPT: sfn.JsonPath.number_at(f"$.{c.DETAIL_ATTEMPT}")}),
            output_path=None,
            result_selector={"result": sfn.JsonPath.object_at("$.Payload")},  # {"state", "error"?} or {"skipped"}
            result_path="$.step",
        )
        compute.add_retry(errors=["States.TaskFailed"], max_attempts=2, interval=Duration.seconds(1), backoff_rate=2)

        def complete(construct_id: str, state: str, error: str) -> tasks.EventBridgePutEvents:
            detail: dict[str, object] = {"requestId": sfn.JsonPath.string_at("$.requestId"),
                                         "request": sfn.JsonPath.object_at("$.request"), "state": state,
                                         "error": error,
                                         c.DETAIL_SHARDS: sfn.JsonPath.number_at(f"$.{c.DETAIL_SHARDS}"),
                                         c.DETAIL_ATTEMPT: sfn.JsonPath.number_at(f"$.{c.DETAIL_ATTEMPT}")}
            task = tasks.EventBridgePutEvents(self, construct_id, entries=[tasks.EventBridgePutEventsEntry(
                event_bus=bus, source=c.COMPUTE_SOURCE, detail_type=c.COMPLETION_DETAIL_TYPE,
                detail=sfn.TaskInput.from_object(detail),
            )], result_path=sfn.JsonPath.DISCARD)
            # A completion that is not put leaves the request waiting for its deadline.
            for errors in ([EVENTBRIDGE_FAILED_ENTRY], ["States.TaskFailed"]):
                task.add_retry(errors=errors, max_attempts=6, interval=Duration.seconds(1), backoff_rate=2,
                               max_delay=Duration.seconds(30), jitter_strategy=sfn.JitterType.FULL)
            self._put_tasks.append(task)
            return task

        succeeded = complete("PutCompletion", c.CASE_SUCCEEDED, "")
        failed = complete("PutFailedCompletion", c.CASE_FAILED, sfn.JsonPath.string_at("$.step.result.error"))
        # The step ran: the computation succeeded, or raised and the step reported its error; or
        # the case was not computed and no completion is due.
        outcome = sfn.Choice(self, "CaseFailed?").when(
            sfn.Condition.is_present("$.step.result.skipped"), sfn.Succeed(self, "CaseNotComputed"),
        ).when(
            sfn.Condition.string_equals("$.step.result.state", c.CASE_FAILED), failed,
        ).otherwise(succeeded)
        # The step itself failed for good (a crash, a timeout, throttling after the retries).
        crashed = sfn.Pass(self, "DescribeStepFailure", parameters={
            "requestId": sfn.JsonPath.string_at("$.requestId"),
            "request": sfn.JsonPath.object_at("$.request"),
            c.DETAIL_DEADLINE: sfn.JsonPath.number_at(f"$.{c.DETAIL_DEADLINE}"),
            c.DETAIL_SHARDS: sfn.JsonPath.number_at(f"$.{c.DETAIL_SHARDS}"),
            c.DETAIL_ATTEMPT: sfn.JsonPath.number_at(f"$.{c.DETAIL_ATTEMPT}"),
            "step": {"result": {
                "state": c.CASE_FAILED,
                "error": sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at("$.stepError.Error"),
                                             sfn.JsonPath.string_at("$.stepError.Cause")),
            }},
        })
        compute.add_catch(crashed, errors=["States.ALL"], result_path="$.stepError")
        crashed.next(failed)
        return read.next(compute).next(outcome)
