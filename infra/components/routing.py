"""The dedicated event bus, the dead-letter queue of rule targets, and the rules that
route fan-out events to compute targets and completion events to the fan-in workflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
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
        self._failure_rule: events.Rule | None = None
        self._failures_to: sqs.IQueue | None = None

    def target_options(self) -> dict[str, Any]:
        """How every rule target is delivered: retried as long as EventBridge allows (24 hours,
        185 attempts: its defaults and maximums, eb-rule-retry-policy.html), then dead-lettered."""
        return dict(
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=c.RULE_TARGET_RETRY_ATTEMPTS,
            max_event_age=Duration.seconds(c.RULE_TARGET_MAX_EVENT_AGE_SECONDS),
        )

    def route_cases(self, construct_id: str, *, target: events.IRuleTarget, description: str,
                    request: Mapping[str, Any] | None = None) -> events.Rule:
        """Fan-out events whose case (`detail.request`) matches `request`, delivered whole to a
        compute target (ComputeBackends decides which cases go where)."""
        return events.Rule(
            self, construct_id,
            event_bus=self.bus,
            description=description,
            event_pattern=events.EventPattern(source=[c.PREPROCESS_SOURCE], detail_type=[c.CASE_DETAIL_TYPE],
                                              detail={"request": request} if request else None),
            targets=[target],
        )

    def route_compute_failures_to(self, function: lambda_.IFunction, queue: sqs.IQueue) -> events.Rule:
        """A compute invocation that failed after Lambda's retries becomes a FAILED completion:
        the record Lambda sends to the function's on-failure destination (the bus) goes, whole,
        to the fan-in buffer, whose consumer reads the case and the error from it. One rule
        serves every compute function: a later call adds its function to the rule.

        The record names the function by its qualified ARN, `...:function:NAME:$LATEST`
        (Lambda developer guide, "Capturing records of Lambda asynchronous invocations":
        the destination event's `resources`), so that is what the rule matches."""
        qualified = f"{function.function_arn}:$LATEST"
        if self._failure_rule is not None:
            if queue is not self._failures_to:
                raise ValueError("compute failures are counted through one queue")
            self._failure_rule.add_event_pattern(resources=[qualified])
            return self._failure_rule
        self._failures_to = queue
        self._failure_rule = events.Rule(
            self, "ComputeFailureRule",
            event_bus=self.bus,
            description="Fan-in: compute invocations that crashed or timed out after retries",
            event_pattern=events.EventPattern(source=[c.LAMBDA_DESTINATION_SOURCE],
                                              detail_type=[c.LAMBDA_FAILURE_DETAIL_TYPE],
                                              resources=[qualified]),
            targets=[targets.SqsQueue(queue, **self.target_options())],
        )
        return self._failure_rule

    def route_completions_to(self, queue: sqs.IQueue) -> events.Rule:
        """Completion events, delivered whole (the message body is the event) to the fan-in
        buffer."""
        return events.Rule(
            self, "CompletionRule",
            event_bus=self.bus,
            description="Fan-in: one event per completed case, from compute to the fan-in buffer",
            event_pattern=events.EventPattern(source=[c.COMPUTE_SOURCE]),
            targets=[targets.SqsQueue(queue, **self.target_options())],
        )
