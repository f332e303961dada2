"""The dedicated event bus, the dead-letter queue of rule targets, and the rules that
route fan-out events to compute and completion events to the fan-in workflow."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lambda_fns import constants as c


class EventRouting(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus")
        # Events EventBridge could not deliver after its retries land here instead of vanishing.
        self.dead_letter_queue = sqs.Queue(
            self, "TargetDeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

    def _target_options(self) -> dict[str, object]:
        return dict(
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=c.RULE_TARGET_RETRY_ATTEMPTS,
            max_event_age=Duration.seconds(c.RULE_TARGET_MAX_EVENT_AGE_SECONDS),
        )

    def route_cases_to(self, function: lambda_.IFunction) -> events.Rule:
        """Fan-out events, delivered whole: the compute function reads `detail` (the seed's contract)."""
        return events.Rule(
            self, "CaseRule",
            event_bus=self.bus,
            description="Fan-out: one event per case, from PreProcess to compute",
            event_pattern=events.EventPattern(source=[c.PREPROCESS_SOURCE], detail_type=[c.CASE_DETAIL_TYPE]),
            targets=[targets.LambdaFunction(function, **self._target_options())],  # type: ignore[arg-type]
        )

    def route_compute_failures_to(self, function: lambda_.IFunction, state_machine: sfn.IStateMachine) -> events.Rule:
        """A compute invocation that failed after Lambda's retries becomes a FAILED completion.
        The input keeps the event's `id` (LocalStack names the execution after it)."""
        payload = "$.detail.requestPayload.detail"
        return events.Rule(
            self, "ComputeFailureRule",
            event_bus=self.bus,
            description="Fan-in: compute invocations that crashed or timed out after retries",
            event_pattern=events.EventPattern(source=[c.LAMBDA_DESTINATION_SOURCE],
                                              detail_type=[c.LAMBDA_FAILURE_DETAIL_TYPE],
                                              resources=[function.function_arn]),
            targets=[targets.SfnStateMachine(
                state_machine,
                input=events.RuleTargetInput.from_object({
                    "id": events.EventField.from_path("$.id"),
                    "detail": {
                        "requestId": events.EventField.from_path(f"{payload}.requestId"),
                        "request": events.EventField.from_path(f"{payload}.request"),
                        "state": c.CASE_FAILED,
                        "error": events.EventField.from_path("$.detail.responsePayload.errorMessage"),
                    },
                }),
                **self._target_options(),  # type: ignore[arg-type]
            )],
        )

    def route_completions_to(self, state_machine: sfn.IStateMachine) -> events.Rule:
        """Completion events, delivered whole: no InputPath, which LocalStack 4.14 cannot start
        a state machine with (localstack/localstack#11970); Increment reads `$.detail` itself."""
        return events.Rule(
            self, "CompletionRule",
            event_bus=self.bus,
            description="Fan-in: one event per completed case, from compute to Increment",
            event_pattern=events.EventPattern(source=[c.COMPUTE_SOURCE]),
            targets=[targets.SfnStateMachine(state_machine, **self._target_options())],  # type: ignore[arg-type]
        )
