"""PipelineMonitoring (infra/components/monitoring.py) as synthesized: the dashboard's
widgets and metrics, each alarm's metric, threshold and comparison, where alarms notify,
the X-Ray sampling rules, and cdk-nag and cfn-lint on the variant with a topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Annotations, Match, Template
from cfnlint.api import ManualArgs, lint_file

from infra.app import build_app
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
                 for fragment in ("Prepare", "Emit", "Compute", "Summary", "ComputeLarge", "WorkflowStep")}
    assert {options["label"]: dimensions["FunctionName"] for _, _, dimensions, options in lines} == {
        label: "${Ref:" + lid + "}" for label, lid in functions.items()
    }
    assert {(namespace, name, options["stat"]) for namespace, name, _, options in lines} == {
        ("AWS/Lambda", metric, "Sum")}


def test_dashboard_shows_dead_letter_queue_depth(template: Template) -> None:
    # GIVEN the synthesized dashboard WHEN the dead-letter queue widget is read
    lines = metric_lines(widget(dashboard(template), "Dead-letter queue depth"))
    # THEN it shows the visible messages of the rule targets' dead-letter queue and the work queue's
    queues = [logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue"),
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
    assert set(metrics) == {c.METRIC_CASES_COMPLETED, c.METRIC_CASES_FAILED, c.METRIC_COMPUTE_DURATION}
    assert all(dimensions == {c.DIMENSION_SERVICE: c.SERVICE_NAME} for dimensions, _ in metrics.values())
    assert metrics[c.METRIC_COMPUTE_DURATION][1]["yAxis"] == "right"


# ---------------------------------------------------------------------------- alarms


@pytest.mark.parametrize("fragment", ["PreProcess", "Increment", "ComputeWorkflow"])
def test_alarm_on_any_failed_execution_of_each_state_machine(template: Template, fragment: str) -> None:
    # GIVEN the alarm for a state machine's failed executions
    props = alarm(template, f"{fragment}ExecutionsFailed")
    # WHEN a minute holds one failed execution or more THEN it fires; no data is not a failure
    assert (props["Namespace"], props["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    state_machine = logical_id(template, "AWS::StepFunctions::StateMachine", fragment)
    assert props["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": state_machine}}]
    assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == ("Sum", 60, 1)
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["Threshold"] == 1
    assert props["TreatMissingData"] == "notBreaching"


def test_alarm_on_any_message_in_the_dead_letter_queue(template: Template) -> None:
    # GIVEN the dead-letter queue alarm
    props = alarm(template, "DeadLetterQueueMessages")
    # WHEN any message is visible in the queue THEN it fires
    queue = logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue")
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert props["Statistic"] == "Maximum"
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["Threshold"] == 0


def test_alarm_on_any_case_given_up_by_the_work_queue(template: Template) -> None:
    # GIVEN the alarm on the queue compute target's dead-letter queue
    props = alarm(template, "WorkQueueDeadLetterMessages")
    # WHEN any case lands there (its request will time out) THEN it fires
    queue = logical_id(template, "AWS::SQS::Queue", "ComputeQueueDeadLetters")
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == (
        "Maximum", "GreaterThanThreshold", 0)


@pytest.mark.parametrize("fragment", ["Prepare", "Emit", "Compute", "Summary", "ComputeLarge", "WorkflowStep"])
def test_alarm_on_throttles_of_each_function(template: Template, fragment: str) -> None:
    # GIVEN the throttle alarm of a function
    props = alarm(template, f"{fragment}Throttles")
    # WHEN the function is throttled at all THEN it fires
    function = logical_id(template, "AWS::Lambda::Function", f"{fragment}Function")
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", "Throttles")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert props["Statistic"] == "Sum"
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["Threshold"] == 0


def test_alarms_notify_an_encrypted_ssl_only_topic_subscribed_by_the_alarm_email(template: Template) -> None:
    # GIVEN a stack synthesized with -c alarmEmail=...
    [(topic_id, topic)] = resources(template, "AWS::SNS::Topic").items()
    # WHEN an alarm fires THEN it publishes to the new topic
    alarms = resources(template, ALARM)
    assert len(alarms) == 3 + 2 + 6  # failed executions (3 workflows), dead letters (2 queues), throttles (6 functions)
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


def test_alarms_notify_nobody_by_default(default_template: Template) -> None:
    # GIVEN a stack synthesized without alarm context
    alarms = resources(default_template, ALARM)
    # WHEN it is deployed THEN the alarms exist, with no action and no topic
    assert len(alarms) == 3 + 2 + 6  # failed executions (3 workflows), dead letters (2 queues), throttles (6 functions)
    assert all("AlarmActions" not in props for props in alarms.values())
    assert not default_template.find_resources("AWS::SNS::Topic")


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
