"""Operating the pipeline on AWS: a CloudWatch dashboard, alarms for what needs a person
(failed executions, undeliverable events, throttled functions), optional notifications, and
an X-Ray sampling rule so that large requests stay within the X-Ray quotas."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_xray as xray
from constructs import Construct

from lambda_fns import constants as c

MINUTE = Duration.minutes(1)
# SQS publishes its queue metrics every five minutes; a shorter period only shows gaps.
QUEUE_PERIOD = Duration.minutes(5)
THROTTLE_PERIOD = Duration.minutes(5)
# Evaluated before X-Ray's default rule (10000); narrow, because it names this stack's workflows.
SAMPLING_RULE_PRIORITY = 100
STATE_MACHINE_SERVICE_TYPE = "AWS::StepFunctions::StateMachine"


def alarm_topic(scope: Construct, *, email: str | None = None, topic_arn: str | None = None) -> sns.ITopic | None:
    """Where alarms notify: an existing topic (`topic_arn`), else a new one when an `email`
    is given (subscribed to it either way), else nowhere."""
    if topic_arn:
        topic: sns.ITopic = sns.Topic.from_topic_arn(scope, "AlarmTopic", topic_arn)
    elif email:
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key: the
        # topic gets its own key, which the alarms' service principal may use.
        key = kms.Key(scope, "AlarmTopicKey", enable_key_rotation=True,
                      description="fanflow: encrypts the alarm notification topic")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True,
                          display_name="fanflow alarms")
    else:
        return None
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


class PipelineMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, fan_out: sfn.StateMachine,
                 fan_in: sfn.StateMachine, functions: Mapping[str, lambda_.IFunction],
                 dead_letter_queue: sqs.IQueue, alarm_topic: sns.ITopic | None = None,
                 trace_sampling_rate: float = c.DEFAULT_XRAY_SAMPLING_RATE,
                 compute_workflows: Mapping[str, sfn.StateMachine] | None = None,
                 compute_dead_letter_queues: Mapping[str, sqs.IQueue] | None = None) -> None:
        super().__init__(scope, construct_id)
        if not 0.0 <= trace_sampling_rate <= 1.0:
            raise ValueError(f"the X-Ray sampling rate must be between 0 and 1, got {trace_sampling_rate}")
        state_machines = {"PreProcess": fan_out, "Increment": fan_in}
        self.alarms: dict[str, cw.Alarm] = {}

        # Compute targets that are workflows or queues: a failed workflow still reports its
        # case (its Catch), but a message in a work queue's dead-letter queue leaves its
        # request to time out.
        for label, state_machine in (compute_workflows or {}).items():
            self._alarm(
                f"{label}ExecutionsFailed",
                state_machine.metric_failed(period=MINUTE, statistic="Sum"),
                threshold=1, comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=f"fanflow: an execution of the {label} compute workflow failed outright",
            )
        for label, queue in (compute_dead_letter_queues or {}).items():
            self._alarm(
                f"{label}DeadLetterMessages",
                queue.metric_approximate_number_of_messages_visible(period=QUEUE_PERIOD, statistic="Maximum"),
                threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"fanflow: cases of the {label} work queue were given up after their receives; "
                "the requests they belong to will time out",
            )

        for label, state_machine in state_machines.items():
            self._alarm(
                f"{label}ExecutionsFailed",
                state_machine.metric_failed(period=MINUTE, statistic="Sum"),
                threshold=1, comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=f"fanflow: an execution of {label} failed"
                + (" (this includes requests it rejected as invalid or duplicate)" if label == "PreProcess" else
                   " (a case could not be counted, or Summary failed after its retries)"),
            )
        self._alarm(
            "DeadLetterQueueMessages",
            dead_letter_queue.metric_approximate_number_of_messages_visible(period=QUEUE_PERIOD, statistic="Maximum"),
            threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description="fanflow: EventBridge could not deliver events to their targets; "
            "the requests they belong to will not complete",
        )
        for label, function in functions.items():
            self._alarm(
                f"{label}Throttles",
                function.metric_throttles(period=THROTTLE_PERIOD, statistic="Sum"),
                threshold=0, comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"fanflow: the {label} function was throttled (account or reserved concurrency)",
            )
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

        # No alarm status widget: the embedded target deploys this template through moto's
        # CloudFormation, which does not model alarms, and a dashboard referencing them fails there.
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-operations")
        self.dashboard.add_widgets(*[
            cw.GraphWidget(title=f"{label} executions", width=12, left=[
                state_machine.metric_started(period=MINUTE, statistic="Sum", label="started"),
                state_machine.metric_succeeded(period=MINUTE, statistic="Sum", label="succeeded"),
                state_machine.metric_failed(period=MINUTE, statistic="Sum", label="failed"),
                state_machine.metric_timed_out(period=MINUTE, statistic="Sum", label="timed out"),
            ])
            for label, state_machine in {**state_machines, **(compute_workflows or {})}.items()
        ])
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Lambda errors", width=8, left=[
                function.metric_errors(period=MINUTE, statistic="Sum", label=label)
                for label, function in functions.items()
            ]),
            cw.GraphWidget(title="Lambda throttles", width=8, left=[
                function.metric_throttles(period=MINUTE, statistic="Sum", label=label)
                for label, function in functions.items()
            ]),
            cw.GraphWidget(title="Dead-letter queue depth", width=8, left=[
                dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=QUEUE_PERIOD, statistic="Maximum", label="messages visible"),
                *[queue.metric_approximate_number_of_messages_visible(
                    period=QUEUE_PERIOD, statistic="Maximum", label=label)
                  for label, queue in (compute_dead_letter_queues or {}).items()],
            ]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Requests completed, by status", width=8, stacked=True, left=[
                self._request_metric(c.METRIC_REQUESTS_COMPLETED, status, "Sum") for status in sorted(c.FINAL_STATUSES)
            ]),
            cw.GraphWidget(title="Request duration (s), by status", width=8, left=[
                self._request_metric(c.METRIC_REQUEST_DURATION, status, "Maximum")
                for status in sorted(c.FINAL_STATUSES)
            ]),
            cw.GraphWidget(title="Cases computed and failed", width=8, left=[
                self._case_metric(c.METRIC_CASES_COMPLETED, "Sum", "computed"),
                self._case_metric(c.METRIC_CASES_FAILED, "Sum", "failed"),
            ], right=[self._case_metric(c.METRIC_COMPUTE_DURATION, "p99", "compute ms (p99)")]),
        )

        # Step Functions decides whether to trace an execution by these rules, and the
        # decision travels with the trace header through EventBridge to every compute
        # invocation and Increment execution of the request: a sampled request is traced
        # whole. No reservoir: a per-second reservoir would trace nearly every request,
        # since requests are rare; the fixed rate alone bounds the segments sent.
        self.sampling_rules = [
            xray.CfnSamplingRule(self, f"{label}Sampling", sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=f"{Stack.of(self).stack_name}-{label}"[:32],
                priority=SAMPLING_RULE_PRIORITY,
                fixed_rate=trace_sampling_rate,
                reservoir_size=0,
                service_name=state_machine.state_machine_name,
                service_type=STATE_MACHINE_SERVICE_TYPE,
                resource_arn="*", host="*", http_method="*", url_path="*",
                version=1,
            ))
            for label, state_machine in state_machines.items()
        ]

    def _alarm(self, construct_id: str, metric: cw.Metric, *, threshold: float,
               comparison: cw.ComparisonOperator, description: str) -> cw.Alarm:
        alarm = cw.Alarm(self, construct_id, metric=metric, threshold=threshold, comparison_operator=comparison,
                         evaluation_periods=1, treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                         alarm_description=description)
        self.alarms[construct_id] = alarm
        return alarm

    @staticmethod
    def _request_metric(name: str, status: str, statistic: str) -> cw.Metric:
        return cw.Metric(namespace=c.METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=MINUTE,
                         dimensions_map={c.DIMENSION_SERVICE: c.SERVICE_NAME, c.DIMENSION_STATUS: status},
                         label=status)

    @staticmethod
    def _case_metric(name: str, statistic: str, label: str) -> cw.Metric:
        return cw.Metric(namespace=c.METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=MINUTE,
                         dimensions_map={c.DIMENSION_SERVICE: c.SERVICE_NAME}, label=label)
