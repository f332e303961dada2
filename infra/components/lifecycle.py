"""Cancel: the workflow a user (or `fanflow cancel`) starts with `{"requestId": ...}` to stop a
running request. Its Lifecycle step claims the request and marks it cancelled in one
conditional write (lambda_fns/lifecycle.py): nothing is counted after it, and Emit stops putting
the request's cases. Then it stops the PreProcess execution of the request's current attempt
(its fan-out's Map Run and its wait for the deadline; StopExecution of an execution that has
ended already changes nothing, and the workflow goes on) and runs Summary, which closes the
request as CANCELLED. An unknown request ends the execution FAILED with RequestNotFound, a
request that is not running with RequestNotRunning, each with a cause that says why.

Redrive has no workflow of its own: it is a PreProcess execution (infra/components/fan_out.py)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.components.functions import lambda_task, state_machine
from infra.components.summary import summary_task
from lambda_fns import constants as c

NOT_FOUND = "RequestNotFound"
NOT_RUNNING = "RequestNotRunning"


class CancelWorkflow(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, lifecycle_function: lambda_.IFunction,
                 summary_function: lambda_.IFunction, preprocess: sfn.StateMachine) -> None:
        super().__init__(scope, construct_id)
        claim = lambda_task(self, "ClaimCancel", function=lifecycle_function, payload=sfn.TaskInput.from_object({
            "action": "cancel", "requestId": sfn.JsonPath.string_at("$.requestId")}),
            output_path=None, result_selector={"executionArn": sfn.JsonPath.string_at("$.Payload.executionArn"),
                                               "attempt": sfn.JsonPath.number_at("$.Payload.attempt")},
            result_path="$.cancel")
        for error in (NOT_FOUND, NOT_RUNNING):
            claim.add_catch(sfn.Fail(self, error, error=error, cause_path="$.error.Cause"), errors=[error],
                            result_path="$.error")
        # The executions of PreProcess (the request's attempts) and nothing else.
        executions = Stack.of(self).format_arn(service="states", resource="execution",
                                               resource_name=f"{preprocess.state_machine_name}:*",
                                               arn_format=ArnFormat.COLON_RESOURCE_NAME)
        stop = tasks.CallAwsService(
            self, "StopAttempt", service="sfn", action="stopExecution", iam_action="states:StopExecution",
            iam_resources=[executions],
            parameters={"ExecutionArn": sfn.JsonPath.string_at("$.cancel.executionArn"),
                        "Error": "RequestCancelled", "Cause": "the request was cancelled"},
            result_path=sfn.JsonPath.DISCARD,
        )
        summarize = summary_task(self, "SummarizeCancelled", summary_function, c.REASON_CANCELLED)
        # An execution that has ended, or cannot be stopped now: Summary closes the request either way.
        stop.add_catch(summarize, errors=["States.ALL"], result_path="$.stopError")
        named = (sfn.Choice(self, "AttemptNamed?")
                 .when(sfn.Condition.string_equals("$.cancel.executionArn", ""), summarize)
                 .otherwise(stop))
        stop.next(summarize)
        summarize.next(sfn.Succeed(self, "RequestCancelled"))
        self.state_machine = state_machine(
            self, "Cancel", definition=claim.next(named),
            comment="fanflow: cancel a running request (input {\"requestId\": ...}); it closes as CANCELLED",
            log_level=sfn.LogLevel.ALL,
        )
