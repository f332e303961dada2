"""Operating the pipeline on AWS: a CloudWatch dashboard, alarms on what loses work or needs a
person, a notification path for every alarm, and an X-Ray sampling rule so that large requests
stay within the X-Ray quotas.

The alarms fire on what loses or stalls work, not on what the design absorbs: requests that end
TIMED_OUT, cases a fan-out gave up, PreProcess failures other than the requests it rejects,
failed executions of per-case workflows, compute invocations that crash or time out,
asynchronous events Lambda dropped or could not hand to its failure destination, rule targets
EventBridge gave up on (and dead letters it could not keep), messages arriving in a dead-letter
queue (arrivals, not depth, so that the next incident notifies again), and orchestration
functions throttled for minutes on end. A compute function reaching its ceiling is throttled by
design (Lambda queues and retries its asynchronous events), so compute throttles only show on
the dashboard.

Everything is registered through add_* methods, so another queue, workflow, function or rule
(the fan-in's, say) gets the same alarms with one call."""

from __future__ import annotations

from enum import Enum

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
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
FIVE_MINUTES = Duration.minutes(5)
# SQS publishes its queue metrics every five minutes; a shorter period only shows gaps.
QUEUE_PERIOD = FIVE_MINUTES
# Throttled orchestration is retried by its workflow (infra/components/functions.py): only
# throttling that lasts this many 5-minute periods in a row needs a person.
SUSTAINED_THROTTLE_PERIODS = 3
# Evaluated before X-Ray's default rule (10000); narrow, because it names this stack's workflows.
SAMPLING_RULE_PRIORITY = 100
STATE_MACHINE_SERVICE_TYPE = "AWS::StepFunctions::StateMachine"
OUTPUT_ALARM_TOPIC_ARN = "AlarmTopicArn"


class FunctionRole(Enum):
    ORCHESTRATION = "orchestration"  # invoked by a workflow, which retries it: errors and lasting throttles alarm
    ORCHESTRATION_NO_ERRORS = "orchestration, errors expected"  # Prepare: a rejected request is a function error
    COMPUTE = "compute"  # invoked asynchronously by EventBridge: errors, dropped events, failed destinations alarm
    COMPUTE_STEP = "compute step"  # invoked by a compute workflow: errors alarm


class DeadLetterFeed(Enum):
    """How messages reach a dead-letter queue, which decides how their arrival is measured:
    NumberOfMessagesSent counts the messages a producer sends (EventBridge sends its undeliverable
    events), but not those SQS moves there after their receives (a redrive policy), so those are
    seen as a rise in the visible messages (docs.aws.amazon.com/AWSSimpleQueueService/latest/
    SQSDeveloperGuide/sqs-dead-letter-queues.html)."""

    SENT = "sent by a producer"
    REDRIVE = "moved by a redrive policy"


def alarm_topic(scope: Construct, *, email: str | None = None, topic_arn: str | None = None) -> sns.ITopic:
    """Where alarms notify: an existing topic (`topic_arn`), else a topic of the stack's own (its
    ARN is the stack output AlarmTopicArn: subscribe to it), subscribed by `email` if one is given."""
    if topic_arn:
        topic: sns.ITopic = sns.Topic.from_topic_arn(scope, "AlarmTopic", topic_arn)
    else:
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key: the
        # topic gets its own key, which the alarms' service principal may use.
        key = kms.Key(scope, "AlarmTopicKey", enable_key_rotation=True,
                      description="fanflow: encrypts the alarm notification topic")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True, display_name="fanflow alarms")
        CfnOutput(scope, OUTPUT_ALARM_TOPIC_ARN, value=topic.topic_arn,
                  description="fanflow's alarms publish here: subscribe to be notified")
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


class PipelineMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, fan_out: sfn.StateMachine,
                 fan_in: sfn.StateMachine, alarm_topic: sns.ITopic,
                 trace_sampling_rate: float = c.DEFAULT_XRAY_SAMPLING_RATE) -> None:
        super().__init__(scope, construct_id)
        if not 0.0 <= trace_sampling_rate <= 1.0:
            raise ValueError(f"the X-Ray sampling rate must be between 0 and 1, got {trace_sampling_rate}")
        self.alarm_topic = alarm_topic
        self.alarms: dict[str, cw.Alarm] = {}
        # No alarm status widget: the embedded target deploys this template through moto's
        # CloudFormation, which does not model alarms, and a dashboard referencing them fails there.
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-operations")
        self._errors = cw.GraphWidget(title="Lambda errors", width=8)
        self._throttles = cw.GraphWidget(title="Lambda throttles", width=8)
        self._dead_letters = cw.GraphWidget(title="Dead-letter queue depth", width=8)
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Requests completed, by status", width=8, stacked=True, left=[
                self._request_metric(c.METRIC_REQUESTS_COMPLETED, "Sum", status) for status in sorted(c.FINAL_STATUSES)
            ]),
            cw.GraphWidget(title="Request duration (s), by status", width=8, left=[
                self._request_metric(c.METRIC_REQUEST_DURATION, "Maximum", status)
                for status in sorted(c.FINAL_STATUSES)
            ]),
            cw.GraphWidget(title="Cases computed and failed", width=8, left=[
                self._case_metric(c.METRIC_CASES_COMPLETED, "Sum", "computed"),
                self._case_metric(c.METRIC_CASES_FAILED, "Sum", "failed"),
                self._case_metric(c.METRIC_CASES_EXPIRED, "Sum", "expired (not computed)"),
                self._case_metric(c.METRIC_CASES_NOT_EMITTED, "Sum", "not emitted"),
            ], right=[self._case_metric(c.METRIC_COMPUTE_DURATION, "p99", "compute ms (p99)")]),
        )
        self.dashboard.add_widgets(self._errors, self._throttles, self._dead_letters)

        self._request_alarms(fan_out)
        self.add_workflow("Increment", fan_in, description="a completed case could not be counted, or Summary "
                          "failed after its retries")
        # Step Functions decides whether to trace an execution by these rules, and the
        # decision travels with the trace header through EventBridge to every compute
        # invocation and Increment execution of the request: a sampled request is traced
        # whole. No reservoir: a per-second reservoir would trace nearly every request,
        # since requests are rare; the fixed rate alone bounds the segments sent.
        self.sampling_rules = [self._sampling_rule(label, machine, trace_sampling_rate)
                               for label, machine in {"PreProcess": fan_out, "Increment": fan_in}.items()]

    # -- registration ---------------------------------------------------------------------
    def add_workflow(self, label: str, state_machine: sfn.IStateMachine, *, description: str) -> cw.Alarm:
        """A per-case (or per-batch) workflow: any failed execution alarms; `description` says
        what one means."""
        self._executions_widget(label, state_machine)
        return self._alarm(f"{label}ExecutionsFailed", state_machine.metric_failed(period=MINUTE, statistic="Sum"),
                           description=f"fanflow: an execution of {label} failed: {description}")

    def add_function(self, label: str, function: lambda_.IFunction, *, role: FunctionRole) -> None:
        self._errors.add_left_metric(function.metric_errors(period=MINUTE, statistic="Sum", label=label))
        self._throttles.add_left_metric(function.metric_throttles(period=MINUTE, statistic="Sum", label=label))
        if role is not FunctionRole.ORCHESTRATION_NO_ERRORS:
            what = ("crashed or timed out (its case is counted FAILED once Lambda's retries are spent)"
                    if role is FunctionRole.COMPUTE else "failed (its workflow retries it, then gives up)")
            self._alarm(f"{label}Errors", function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                        description=f"fanflow: an invocation of the {label} function {what}")
        if role in (FunctionRole.ORCHESTRATION, FunctionRole.ORCHESTRATION_NO_ERRORS):
            self._alarm(f"{label}Throttles", function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                        evaluation_periods=SUSTAINED_THROTTLE_PERIODS,
                        description=f"fanflow: the {label} function has been throttled for "
                        f"{SUSTAINED_THROTTLE_PERIODS * 5} minutes: its concurrency floor "
                        "(-c orchestrationConcurrency) or the account's concurrency is too small")
        if role is FunctionRole.COMPUTE:
            # Events Lambda discarded (retries or maximum age spent, before or after running them)
            # and failure records it could not deliver: cases that will never be counted
            # (docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html).
            for metric, meaning in (("AsyncEventsDropped", "dropped asynchronous events"),
                                    ("DestinationDeliveryFailures", "could not deliver failure records")):
                self._alarm(f"{label}{metric}", function.metric(metric, period=FIVE_MINUTES, statistic="Sum"),
                            description=f"fanflow: Lambda {meaning} of the {label} function: "
                            "their cases will not be counted and their requests will time out")

    def add_dead_letter_queue(self, label: str, queue: sqs.IQueue, *, feed: DeadLetterFeed, meaning: str) -> cw.Alarm:
        """Alarm on each message arriving in a dead-letter queue; `meaning` says what one means."""
        self._dead_letters.add_left_metric(queue.metric_approximate_number_of_messages_visible(
            period=QUEUE_PERIOD, statistic="Maximum", label=label))
        description = f"fanflow: a message arrived in the {label} dead-letter queue: {meaning}"
        if feed is DeadLetterFeed.SENT:
            metric: cw.IMetric = queue.metric_number_of_messages_sent(period=QUEUE_PERIOD, statistic="Sum")
        else:
            metric = cw.MathExpression(
                expression="DIFF(depth)", period=QUEUE_PERIOD, label="messages arrived",
                using_metrics={"depth": queue.metric_approximate_number_of_messages_visible(
                    period=QUEUE_PERIOD, statistic="Maximum")})
        return self._alarm(f"{label}DeadLetterArrivals", metric, description=description)

    def add_rule(self, label: str, rule: events.IRule, bus: events.IEventBus) -> None:
        """A rule on the stack's bus: invocations EventBridge gave up on, and dead letters it
        could not keep (docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html: a
        custom bus's rule metrics carry EventBusName and RuleName)."""
        dimensions = {"EventBusName": bus.event_bus_name, "RuleName": rule.rule_name}
        for metric, meaning in (("FailedInvocations", "gave up delivering events to its target"),
                                ("InvocationsFailedToBeSentToDlq", "could not put undeliverable events in the "
                                 "dead-letter queue: they are lost")):
            self._alarm(f"{label}{metric}", cw.Metric(namespace="AWS/Events", metric_name=metric, period=FIVE_MINUTES,
                                                      statistic="Sum", dimensions_map=dimensions),
                        description=f"fanflow: EventBridge {meaning} (rule {label}); their requests will not complete")

    # -- the alarms of requests ------------------------------------------------------------
    def _request_alarms(self, fan_out: sfn.StateMachine) -> None:
        self._executions_widget("PreProcess", fan_out)
        # A rejected request (invalid, or a requestId in use) ends PreProcess FAILED by design and
        # counts itself in RequestsRejected first: only the other failures alarm.
        failures = cw.MathExpression(
            expression="failed - FILL(rejected, 0)", period=FIVE_MINUTES, label="unexpected failures",
            using_metrics={"failed": fan_out.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                           "rejected": self._request_metric(c.METRIC_REQUESTS_REJECTED, "Sum", period=FIVE_MINUTES)})
        self._alarm("PreProcessUnexpectedFailures", failures,
                    description="fanflow: PreProcess failed other than by rejecting a request (a lost fan-out batch, "
                    "a deadline it could not close, an AWS error after retries)")
        self._alarm("PreProcessTimedOut", fan_out.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
                    description="fanflow: a PreProcess execution timed out")
        self._alarm("RequestsTimedOut", self._request_metric(c.METRIC_REQUESTS_COMPLETED, "Sum", c.STATUS_TIMED_OUT,
                                                             period=FIVE_MINUTES),
                    description="fanflow: a request ended TIMED_OUT: cases never completed (see its summary)")
        self._alarm("CasesNotEmitted", self._case_metric(c.METRIC_CASES_NOT_EMITTED, "Sum", "not emitted",
                                                         period=FIVE_MINUTES),
                    description="fanflow: a fan-out batch was given up after its retries; its request ends FAILED")

    # -- helpers ---------------------------------------------------------------------------
    def _executions_widget(self, label: str, state_machine: sfn.IStateMachine) -> None:
        self.dashboard.add_widgets(cw.GraphWidget(title=f"{label} executions", width=12, left=[
            state_machine.metric_started(period=MINUTE, statistic="Sum", label="started"),
            state_machine.metric_succeeded(period=MINUTE, statistic="Sum", label="succeeded"),
            state_machine.metric_failed(period=MINUTE, statistic="Sum", label="failed"),
            state_machine.metric_timed_out(period=MINUTE, statistic="Sum", label="timed out"),
        ]))

    def _alarm(self, construct_id: str, metric: cw.IMetric, *, description: str, threshold: float = 1,
               evaluation_periods: int = 1) -> cw.Alarm:
        alarm = cw.Alarm(self, construct_id, metric=metric, threshold=threshold, evaluation_periods=evaluation_periods,
                         comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                         treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms[construct_id] = alarm
        return alarm

    def _sampling_rule(self, label: str, state_machine: sfn.StateMachine, rate: float) -> xray.CfnSamplingRule:
        return xray.CfnSamplingRule(self, f"{label}Sampling", sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
            rule_name=f"{Stack.of(self).stack_name}-{label}"[:32],
            priority=SAMPLING_RULE_PRIORITY,
            fixed_rate=rate,
            reservoir_size=0,
            service_name=state_machine.state_machine_name,
            service_type=STATE_MACHINE_SERVICE_TYPE,
            resource_arn="*", host="*", http_method="*", url_path="*",
            version=1,
        ))

    @staticmethod
    def _request_metric(name: str, statistic: str, status: str | None = None, *,
                        period: Duration = MINUTE) -> cw.Metric:
        dimensions = {c.DIMENSION_SERVICE: c.SERVICE_NAME}
        if status is not None:
            dimensions[c.DIMENSION_STATUS] = status
        return cw.Metric(namespace=c.METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=period,
                         dimensions_map=dimensions, label=status or name)

    @staticmethod
    def _case_metric(name: str, statistic: str, label: str, *, period: Duration = MINUTE) -> cw.Metric:
        return cw.Metric(namespace=c.METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=period,
                         dimensions_map={c.DIMENSION_SERVICE: c.SERVICE_NAME}, label=label)
