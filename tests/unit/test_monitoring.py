"""PipelineMonitoring (infra/components/monitoring.py) as synthesized: the dashboard's
widgets and metrics, each alarm's metric, threshold and comparison, where alarms notify,
the X-Ray sampling rules, and cdk-nag and cfn-lint on the variant with a topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Annotations, Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.app import build_app
from infra.components.monitoring import DeadLetterFeed, FunctionRole, PipelineMonitoring, alarm_topic
from lambda_fns import constants as c
from tests.cfn import logical_id, rendered_json

ALARM = "AWS::CloudWatch::Alarm"
EMAIL = "ops@example.com"
TOPIC_ARN = "arn:aws:sns:us-east-1:111122223333:existing-alarms"


def synthesize(outdir: Path, context: dict[str, object]) -> tuple[Stack, Template, Path]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
            mp.delenv(name, raising=False)
        mp.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        app = build_app(outdir=str(outdir), context=context)
        stack = app.node.find_child(c.STACK_NAME)
        assert isinstance(stack, Stack)
        assembly = app.synth()
        template_file = Path(assembly.get_stack_by_name(c.STACK_NAME).template_full_path)
        return stack, Template.from_stack(stack), template_file


@pytest.fixture(scope="module")
def with_email(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Template, Path]]:
    yield synthesize(tmp_path_factory.mktemp("cdk.out"), {"alarmEmail": EMAIL, "xraySamplingRate": "0.2"})


@pytest.fixture(scope="module")
def template(with_email: tuple[Stack, Template, Path]) -> Template:
    return with_email[1]


@pytest.fixture(scope="module")
def default_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), {})[1]


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in template.find_resources(resource_type).items()}


def alarm(template: Template, fragment: str) -> dict[str, Any]:
    return resources(template, ALARM)[logical_id(template, ALARM, fragment)]


def dashboard(template: Template) -> dict[str, Any]:
    """The dashboard body as JSON, each CloudFormation token written as `${Ref:id}` or `${GetAtt:id.attr}`."""
    [props] = resources(template, "AWS::CloudWatch::Dashboard").values()
    return rendered_json(props["DashboardBody"])


def widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    [found] = [w["properties"] for w in body["widgets"] if w["properties"].get("title") == title]
    return found


def metric_lines(properties: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, metric, dimensions, options) for each line of a graph widget."""
    lines = []
    for line in properties["metrics"]:
        *names, options = line if isinstance(line[-1], dict) else [*line, {}]
        namespace, metric, *pairs = names
        lines.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True)), options))
    return lines


# ---------------------------------------------------------------------------- dashboard


@pytest.mark.parametrize(("title", "fragment"), [("PreProcess executions", "PreProcess"),
                                                 ("Increment executions", "Increment"),
                                                 ("ComputeWorkflow executions", "ComputeWorkflow")])
def test_dashboard_shows_executions_started_and_failed_per_state_machine(
        template: Template, title: str, fragment: str) -> None:
    # GIVEN the synthesized dashboard
    body = dashboard(template)
    state_machine = logical_id(template, "AWS::StepFunctions::StateMachine", fragment)
    # WHEN its executions widget is read THEN it sums started, succeeded, failed and timed-out
    # executions of that state machine, per minute
    lines = metric_lines(widget(body, title))
    assert [metric for _, metric, _, _ in lines] == ["ExecutionsStarted", "ExecutionsSucceeded",
                                                     "ExecutionsFailed", "ExecutionsTimedOut"]
    for namespace, _, dimensions, options in lines:
        assert namespace == "AWS/States"
        assert dimensions == {"StateMachineArn": "${Ref:" + state_machine + "}"}
        assert options["stat"] == "Sum" and options["period"] == 60


@pytest.mark.parametrize(("title", "metric"), [("Lambda errors", "Errors"), ("Lambda throttles", "Throttles")])
def test_dashboard_shows_errors_and_throttles_of_every_function(template: Template, title: str, metric: str) -> None:
    # GIVEN the synthesized dashboard WHEN the Lambda widget is read
    lines = metric_lines(widget(dashboard(template), title))
    # THEN it has one line per function, summing that metric
    functions = {fragment: logical_id(template, "AWS::Lambda::Function", f"{fragment}Function")
                 for fragment in ("Prepare", "Emit", "Lifecycle", "Compute", "Summary", "ComputeLarge", "WorkflowStep")}
    functions["FanInConsumer"] = logical_id(template, "AWS::Lambda::Function", "ConsumerFunction")
    functions["CountBatch"] = logical_id(template, "AWS::Lambda::Function", "CountFunction")
    assert {options["label"]: dimensions["FunctionName"] for _, _, dimensions, options in lines} == {
        label: "${Ref:" + lid + "}" for label, lid in functions.items()
    }
    assert {(namespace, name, options["stat"]) for namespace, name, _, options in lines} == {
        ("AWS/Lambda", metric, "Sum")}


def test_dashboard_shows_dead_letter_queue_depth(template: Template) -> None:
    # GIVEN the synthesized dashboard WHEN the dead-letter queue widget is read
    lines = metric_lines(widget(dashboard(template), "Dead-letter queue depth"))
    # THEN it shows the visible messages of the rule targets' dead-letter queue, the completion
    # buffer's and the work queue's
    queues = [logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue"),
              logical_id(template, "AWS::SQS::Queue", "CompletionDeadLetters"),
              logical_id(template, "AWS::SQS::Queue", "ComputeQueueDeadLetters")]
    assert [dimensions for _, _, dimensions, _ in lines] == [
        {"QueueName": "${GetAtt:" + queue + ".QueueName}"} for queue in queues]
    for namespace, metric, _, options in lines:
        assert (namespace, metric) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        assert options["stat"] == "Maximum"


def test_dashboard_shows_requests_completed_by_status_from_the_summary_metric(template: Template) -> None:
    # GIVEN the synthesized dashboard WHEN the requests widget is read
    properties = widget(dashboard(template), "Requests completed, by status")
    lines = metric_lines(properties)
    # THEN it stacks the Summary function's RequestsCompleted metric, one line per final status
    assert properties["stacked"] is True
    assert sorted(dimensions[c.DIMENSION_STATUS] for _, _, dimensions, _ in lines) == sorted(c.FINAL_STATUSES)
    for namespace, metric, dimensions, options in lines:
        assert (namespace, metric) == (c.METRICS_NAMESPACE, c.METRIC_REQUESTS_COMPLETED)
        assert dimensions[c.DIMENSION_SERVICE] == c.SERVICE_NAME
        assert options["stat"] == "Sum"


def test_dashboard_shows_cases_and_compute_duration_from_the_compute_metrics(template: Template) -> None:
    # GIVEN the synthesized dashboard WHEN the cases widget is read
    properties = widget(dashboard(template), "Cases computed and failed")
    # THEN it reads the metrics the Compute function emits, with the dimensions it emits them with
    metrics = {metric: (dimensions, options) for _, metric, dimensions, options in metric_lines(properties)}
    assert set(metrics) == {c.METRIC_CASES_COMPLETED, c.METRIC_CASES_FAILED, c.METRIC_COMPUTE_DURATION,
                            c.METRIC_CASES_EXPIRED, c.METRIC_CASES_NOT_EMITTED}
    assert all(dimensions == {c.DIMENSION_SERVICE: c.SERVICE_NAME} for dimensions, _ in metrics.values())
    assert metrics[c.METRIC_COMPUTE_DURATION][1]["yAxis"] == "right"


# ---------------------------------------------------------------------------- alarms


def threshold_of(props: dict[str, Any]) -> tuple[str, float, int]:
    return props["ComparisonOperator"], props["Threshold"], props["EvaluationPeriods"]


AT_LEAST_ONE = ("GreaterThanOrEqualToThreshold", 1, 1)


@pytest.mark.parametrize("fragment", ["Increment", "ComputeWorkflow"])
def test_alarm_on_any_failed_execution_of_a_per_case_workflow(template: Template, fragment: str) -> None:
    # GIVEN the alarm for a per-case workflow's failed executions
    props = alarm(template, f"{fragment}ExecutionsFailed")
    # WHEN a minute holds one failed execution or more THEN it fires; no data is not a failure
    assert (props["Namespace"], props["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    state_machine = logical_id(template, "AWS::StepFunctions::StateMachine", fragment)
    assert props["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": state_machine}}]
    assert (props["Statistic"], props["Period"]) == ("Sum", 60)
    assert threshold_of(props) == AT_LEAST_ONE
    assert props["TreatMissingData"] == "notBreaching"


def test_preprocess_alarms_on_failures_other_than_rejected_requests(template: Template) -> None:
    # GIVEN PreProcess's failure alarm
    props = alarm(template, "PreProcessUnexpectedFailures")
    # THEN it fires on its failed executions less the requests it rejected (which count themselves
    # in RequestsRejected before failing): an invalid or duplicate request alarms nobody
    metrics = {m["Id"]: m for m in props["Metrics"]}
    [expression] = [m for m in props["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "failed - FILL(rejected, 0)"
    failed, rejected = metrics["failed"]["MetricStat"], metrics["rejected"]["MetricStat"]
    state_machine = logical_id(template, "AWS::StepFunctions::StateMachine", "PreProcess")
    assert (failed["Metric"]["Namespace"], failed["Metric"]["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert failed["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": state_machine}}]
    assert (rejected["Metric"]["Namespace"], rejected["Metric"]["MetricName"]) == (
        c.METRICS_NAMESPACE, c.METRIC_REQUESTS_REJECTED)
    assert rejected["Metric"]["Dimensions"] == [{"Name": c.DIMENSION_SERVICE, "Value": c.SERVICE_NAME}]
    assert failed["Period"] == rejected["Period"] == 300 and failed["Stat"] == rejected["Stat"] == "Sum"
    assert threshold_of(props) == AT_LEAST_ONE


@pytest.mark.parametrize(("construct", "metric", "dimensions"), [
    ("RequestsTimedOut", c.METRIC_REQUESTS_COMPLETED,
     [{"Name": c.DIMENSION_SERVICE, "Value": c.SERVICE_NAME},
      {"Name": c.DIMENSION_STATUS, "Value": c.STATUS_TIMED_OUT}]),
    ("CasesNotEmitted", c.METRIC_CASES_NOT_EMITTED, [{"Name": c.DIMENSION_SERVICE, "Value": c.SERVICE_NAME}]),
])
def test_alarm_on_requests_ending_timed_out_and_on_cases_a_fan_out_gave_up(
        template: Template, construct: str, metric: str, dimensions: list[dict[str, str]]) -> None:
    # GIVEN the alarm on what Summary (requests by status) and Emit (cases given up) report
    props = alarm(template, construct)
    [query] = props["Metrics"]  # a labelled metric renders as a query
    stat = query["MetricStat"]
    # THEN it fires on one such request or case, with the dimensions the handlers emit it with
    assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
        c.METRICS_NAMESPACE, metric, "Sum")
    assert sorted(stat["Metric"]["Dimensions"], key=lambda d: d["Name"]) == dimensions
    assert threshold_of(props) == AT_LEAST_ONE


def test_the_rule_targets_dead_letter_queue_alarms_on_each_arrival(template: Template) -> None:
    # GIVEN the alarm on the dead-letter queue EventBridge sends undeliverable events to
    props = alarm(template, "RuleTargetsDeadLetterArrivals")
    queue = logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue")
    # THEN it counts the messages sent in (arrivals), not the depth: it returns to OK after an
    # incident, so the next one notifies again
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
        "AWS/SQS", "NumberOfMessagesSent", "Sum")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert threshold_of(props) == AT_LEAST_ONE


def test_the_work_queue_s_dead_letter_queue_alarms_on_a_rise_of_its_depth(template: Template) -> None:
    # GIVEN the alarm on the work queue's dead-letter queue, which SQS fills by redrive
    props = alarm(template, "WorkQueueDeadLetterArrivals")
    queue = logical_id(template, "AWS::SQS::Queue", "ComputeQueueDeadLetters")
    # THEN (NumberOfMessagesSent does not count redriven messages) it fires when the depth rises
    [expression] = [m for m in props["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "DIFF(depth)"
    [depth] = [m["MetricStat"] for m in props["Metrics"] if m["Id"] == "depth"]
    assert (depth["Metric"]["MetricName"], depth["Stat"]) == ("ApproximateNumberOfMessagesVisible", "Maximum")
    assert depth["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert threshold_of(props) == AT_LEAST_ONE


@pytest.mark.parametrize("fragment", ["Emit", "Summary", "Compute", "ComputeLarge", "WorkflowStep"])
def test_alarm_on_errors_of_a_function(template: Template, fragment: str) -> None:
    # GIVEN the error alarm of a function (a compute crash or timeout, an orchestration failure)
    props = alarm(template, f"{fragment}Errors")
    function = logical_id(template, "AWS::Lambda::Function", f"{fragment}Function")
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert threshold_of(props) == AT_LEAST_ONE


def test_prepare_errors_alarm_nobody_a_rejected_request_is_one(template: Template) -> None:
    assert not [lid for lid in resources(template, ALARM) if "PrepareErrors" in lid]


@pytest.mark.parametrize("fragment", ["Prepare", "Emit", "Summary"])
def test_orchestration_throttles_alarm_only_when_they_last(template: Template, fragment: str) -> None:
    # GIVEN an orchestration function's throttle alarm (its workflow retries a throttled invocation)
    props = alarm(template, f"{fragment}Throttles")
    function = logical_id(template, "AWS::Lambda::Function", f"{fragment}Function")
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", "Throttles")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    # THEN it fires after 15 minutes of throttling, not on every throttled invocation
    assert (props["Period"], props["EvaluationPeriods"], props["Threshold"]) == (300, 3, 1)


def test_compute_throttles_alarm_nobody(template: Template) -> None:
    # GIVEN the compute functions, capped by design (Lambda queues and retries their events)
    # THEN no alarm watches their throttles: what they lose, Lambda reports as dropped events
    for fragment in ("ComputeThrottles", "ComputeLargeThrottles", "WorkflowStepThrottles"):
        assert not [lid for lid in resources(template, ALARM) if fragment in lid]


@pytest.mark.parametrize("fragment", ["Compute", "ComputeLarge"])
@pytest.mark.parametrize("metric", ["AsyncEventsDropped", "DestinationDeliveryFailures"])
def test_alarm_on_events_lambda_dropped_or_could_not_deliver(template: Template, fragment: str, metric: str) -> None:
    # GIVEN a compute function invoked asynchronously  THEN Lambda dropping one of its events, or failing
    # to deliver a failure record, alarms (docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html)
    props = alarm(template, f"{fragment}{metric}")
    function = logical_id(template, "AWS::Lambda::Function", f"{fragment}Function")
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", metric, "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert threshold_of(props) == AT_LEAST_ONE


def test_every_rule_on_the_bus_alarms_when_eventbridge_gives_up_or_cannot_dead_letter(template: Template) -> None:
    # GIVEN every rule of the stack's bus
    bus = logical_id(template, "AWS::Events::EventBus", "Bus")
    rules = {lid: props for lid, props in resources(template, "AWS::Events::Rule").items()}
    assert len(rules) >= 6
    alarms = resources(template, ALARM)
    for metric in ("FailedInvocations", "InvocationsFailedToBeSentToDlq"):
        watched = {props["Dimensions"][1]["Value"]["Ref"] for props in alarms.values()
                   if props.get("MetricName") == metric}
        # THEN each has the alarm, with the custom bus's dimensions (EventBusName and RuleName)
        assert watched == set(rules), metric
        for props in (p for p in alarms.values() if p.get("MetricName") == metric):
            assert props["Namespace"] == "AWS/Events"
            assert props["Dimensions"][0] == {"Name": "EventBusName", "Value": {"Ref": bus}}
            assert threshold_of(props) == AT_LEAST_ONE


def test_alarms_notify_an_encrypted_ssl_only_topic_subscribed_by_the_alarm_email(template: Template) -> None:
    # GIVEN a stack synthesized with -c alarmEmail=...
    [(topic_id, topic)] = resources(template, "AWS::SNS::Topic").items()
    # WHEN an alarm fires THEN it publishes to the new topic
    alarms = resources(template, ALARM)
    assert all(props["AlarmActions"] == [{"Ref": topic_id}] for props in alarms.values())
    # AND the address is subscribed to it
    template.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": EMAIL, "TopicArn": {"Ref": topic_id}})
    # AND the topic is encrypted with a rotated key of its own, which CloudWatch may use
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = resources(template, "AWS::KMS::Key")[key_id]
    assert key["EnableKeyRotation"] is True
    assert any(statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
               and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(statement["Action"])
               for statement in key["KeyPolicy"]["Statement"])
    # AND it refuses publishing without TLS
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "Topics": [{"Ref": topic_id}],
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Action": "sns:Publish",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])},
    })


def test_alarms_notify_an_existing_topic_when_one_is_named(tmp_path: Path) -> None:
    # GIVEN a stack synthesized with -c alarmTopic=<arn>
    _, template, _ = synthesize(tmp_path, {"alarmTopic": TOPIC_ARN})
    # WHEN an alarm fires THEN it publishes to that topic, and no topic or key is created
    assert all(props["AlarmActions"] == [TOPIC_ARN] for props in resources(template, ALARM).values())
    assert not template.find_resources("AWS::SNS::Topic")
    assert not template.find_resources("AWS::KMS::Key")


def test_without_a_topic_or_address_alarms_notify_a_topic_of_the_stack_s_own(default_template: Template) -> None:
    # GIVEN a stack synthesized without alarm context
    alarms = resources(default_template, ALARM)
    [topic_id] = resources(default_template, "AWS::SNS::Topic")
    # THEN every alarm still has an action: the stack's own topic, whose ARN is an output to subscribe to
    assert alarms and all(props["AlarmActions"] == [{"Ref": topic_id}] for props in alarms.values())
    assert default_template.find_outputs("AlarmTopicArn")["AlarmTopicArn"]["Value"] == {"Ref": topic_id}
    assert not default_template.find_resources("AWS::SNS::Subscription")


def test_another_dead_letter_queue_workflow_and_function_are_one_call_each() -> None:
    # GIVEN a monitoring construct, and a queue, a workflow and a function added later (the fan-in's)
    stack = cdk.Stack(cdk.App(), "Registration")
    machine = sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(
        sfn.Pass(stack, "Noop")))
    monitoring = PipelineMonitoring(stack, "Monitoring", fan_out=machine, fan_in=machine,
                                    alarm_topic=alarm_topic(stack))
    queue = sqs.Queue(stack, "BufferDeadLetters")
    function = lambda_.Function(stack, "Counter", runtime=lambda_.Runtime.PYTHON_3_12, handler="x.handler",
                                code=lambda_.Code.from_inline("def handler(e, c): pass"))
    # WHEN each is registered
    monitoring.add_dead_letter_queue("Buffer", queue, feed=DeadLetterFeed.REDRIVE, meaning="completions lost")
    monitoring.add_workflow("CountBatch", machine, description="a batch was not counted")
    monitoring.add_function("Counter", function, role=FunctionRole.ORCHESTRATION)
    # THEN each gets its alarms, notifying the topic
    names = set(monitoring.alarms)
    assert {"BufferDeadLetterArrivals", "CountBatchExecutionsFailed", "CounterErrors", "CounterThrottles"} <= names
    template = Template.from_stack(stack)
    assert all(props["AlarmActions"] for props in resources(template, ALARM).values())


# ---------------------------------------------------------------------------- X-Ray sampling


@pytest.mark.parametrize(("fragment", "rate"), [("PreProcess", 0.2), ("Increment", 0.2)])
def test_sampling_rule_traces_the_configured_share_of_executions(template: Template, fragment: str,
                                                                 rate: float) -> None:
    # GIVEN a stack synthesized with -c xraySamplingRate=0.2
    state_machine = logical_id(template, "AWS::StepFunctions::StateMachine", fragment)
    rule = resources(template, "AWS::XRay::SamplingRule")[logical_id(template, "AWS::XRay::SamplingRule", fragment)]
    props = rule["SamplingRule"]
    # WHEN X-Ray samples executions of the state machine THEN it traces that share, with no
    # per-second reservoir that would trace every rare request
    assert props["ServiceName"] == {"Fn::GetAtt": [state_machine, "Name"]}
    assert props["ServiceType"] == "AWS::StepFunctions::StateMachine"
    assert props["FixedRate"] == rate
    assert props["ReservoirSize"] == 0
    assert props["Priority"] < 10000, "must be evaluated before X-Ray's default rule"
    assert len(props["RuleName"]) <= 32


def test_sampling_rate_defaults_to_five_percent(default_template: Template) -> None:
    # GIVEN a stack synthesized without -c xraySamplingRate WHEN its rules are read THEN they sample 5 %
    rules = resources(default_template, "AWS::XRay::SamplingRule").values()
    assert [rule["SamplingRule"]["FixedRate"] for rule in rules] == [c.DEFAULT_XRAY_SAMPLING_RATE] * 2
    assert c.DEFAULT_XRAY_SAMPLING_RATE == 0.05


def test_sampling_rate_out_of_range_fails_synthesis(tmp_path: Path) -> None:
    # GIVEN a sampling rate above 1 WHEN the app synthesizes THEN it stops with a clear error
    with pytest.raises(ValueError, match="sampling rate must be between 0 and 1"):
        synthesize(tmp_path, {"xraySamplingRate": "1.5"})


# ---------------------------------------------------------------------------- compliance


def test_cdk_nag_reports_nothing_for_the_alarm_topic_variant(with_email: tuple[Stack, Template, Path]) -> None:
    # GIVEN the stack with its alarm topic and key WHEN the AwsSolutions checks run THEN nothing is reported
    annotations = Annotations.from_stack(with_email[0])
    findings = [*annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")),
                *annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))]
    assert not findings, "\n".join(f"{m.id}: {m.entry.data}" for m in findings)


def test_cfn_lint_finds_no_errors_in_the_alarm_topic_variant(with_email: tuple[Stack, Template, Path]) -> None:
    # GIVEN the synthesized template with the monitoring resources WHEN cfn-lint checks it THEN no error
    matches = lint_file(with_email[2], config=ManualArgs(regions=["us-east-1"]))
    errors = [m for m in matches if m.rule.severity == "error"]
    assert not errors, "\n".join(str(m) for m in errors)
