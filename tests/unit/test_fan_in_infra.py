"""The batched fan-in in the synthesized stack: the completion buffer and its dead-letter
queue, the event source mapping that reads it in batches, the Express Increment workflow
that counts a batch and starts Summary, and who may do what."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import build_app
from infra.fan_in_settings import check_batching
from lambda_fns import constants as c
from tests import documented
from tests.cfn import allows, arn, caught_by, definition, logical_id, ref, references, role_of

FUNCTION = "AWS::Lambda::Function"
QUEUE = "AWS::SQS::Queue"
MAPPING = "AWS::Lambda::EventSourceMapping"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"


@pytest.fixture(scope="module")
def resources(template: Template) -> dict[str, Any]:
    return dict(template.to_json()["Resources"])


@pytest.fixture(scope="module")
def ids(template: Template) -> dict[str, str]:
    return {
        "queue": logical_id(template, QUEUE, "CompletionQueue"),
        "dlq": logical_id(template, QUEUE, "CompletionDeadLetters"),
        "consumer": logical_id(template, FUNCTION, "ConsumerFunction"),
        "count": logical_id(template, FUNCTION, "CountFunction"),
        "summary": logical_id(template, FUNCTION, "SummaryFunction"),
        "increment": logical_id(template, "AWS::StepFunctions::StateMachine", "Increment"),
        "counter": logical_id(template, "AWS::DynamoDB::Table", "CounterTable"),
        "results": logical_id(template, "AWS::DynamoDB::Table", "ResultsTable"),
    }


@pytest.fixture(scope="module")
def increment(template: Template) -> dict[str, Any]:
    return definition(template, "Increment")


def mapping_of(resources: dict[str, Any], function_id: str) -> dict[str, Any]:
    [props] = [r["Properties"] for r in resources.values()
               if r["Type"] == MAPPING and r["Properties"]["FunctionName"] == {"Ref": function_id}]
    return dict(props)


# ---------------------------------------------------------------------------- the buffer


def test_the_buffer_is_encrypted_tls_only_and_dead_letters_after_its_receives(
        resources: dict[str, Any], ids: dict[str, str], template: Template) -> None:
    # GIVEN the completion queue
    queue = resources[ids["queue"]]["Properties"]
    # THEN it is encrypted with SQS-managed keys (which EventBridge can send to)
    assert queue["SqsManagedSseEnabled"] is True
    # AND a completion that cannot be counted goes to the dead-letter queue after its receives
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [ids["dlq"], "Arn"]},
                                      "maxReceiveCount": c.FAN_IN_MAX_RECEIVES}
    # AND a batch in flight stays invisible for six times the consumer's timeout (Lambda's guidance
    # for SQS event sources), so it is not delivered twice while it is being counted
    consumer = resources[ids["consumer"]]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    # AND the dead-letter queue is encrypted and keeps its messages for the longest SQS allows
    dlq = resources[ids["dlq"]]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 86_400
    # AND both refuse plain HTTP
    for lid in ("queue", "dlq"):
        [policy] = [r["Properties"] for r in template.find_resources("AWS::SQS::QueuePolicy").values()
                    if {"Ref": ids[lid]} in r["Properties"]["Queues"]]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in policy["PolicyDocument"]["Statement"]), lid


def test_only_the_stack_rules_may_send_to_the_buffer(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the completion queue's policy
    [policy] = [r["Properties"] for r in template.find_resources("AWS::SQS::QueuePolicy").values()
                if {"Ref": ids["queue"]} in r["Properties"]["Queues"]]
    sends = [s for s in policy["PolicyDocument"]["Statement"]
             if s["Effect"] == "Allow" and "sqs:SendMessage" in s["Action"]]
    # THEN EventBridge may send, and only from the completion rule and the compute-failure rule
    assert {s["Principal"]["Service"] for s in sends} == {"events.amazonaws.com"}
    sources = [s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in sends]
    rules = {lid: r["Properties"] for lid, r in template.find_resources("AWS::Events::Rule").items()}
    by_source = {r["EventPattern"]["source"][0]: lid for lid, r in rules.items()}
    expected = {by_source[c.COMPUTE_SOURCE], by_source[c.LAMBDA_DESTINATION_SOURCE]}
    assert {source["Fn::GetAtt"][0] for source in sources} == expected


def test_the_consumer_reads_the_buffer_in_batches_and_reports_partial_failures(
        resources: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the consumer's event source mapping
    mapping = mapping_of(resources, ids["consumer"])
    # THEN it reads the completion queue in batches of up to 99 (a full batch of one request is one
    # transaction: 99 results rows and the counter row), waiting at most 1 s to fill one
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [ids["queue"], "Arn"]}
    assert mapping["BatchSize"] == c.FAN_IN_BATCH_SIZE == c.TRANSACTION_MAX_ITEMS - 1 == 99
    assert mapping["MaximumBatchingWindowInSeconds"] == c.FAN_IN_BATCH_WINDOW_SECONDS == 1
    # AND only the messages the consumer names are delivered again
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # AND a bounded number of batches run at once, so that counting does not take the account's concurrency
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": c.FAN_IN_MAX_CONCURRENCY}
    # AND the consumer starts the Increment workflow it is given
    env = resources[ids["consumer"]]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_INCREMENT_ARN] == {"Ref": ids["increment"]}


@pytest.mark.parametrize(("context", "expected"), [
    ({"fanInBatchSize": "50", "fanInBatchWindow": "2", "fanInConcurrency": "4"}, (50, 2, 4)),
    ({"fanInBatchSize": "10", "fanInBatchWindow": "0"}, (10, None, c.FAN_IN_MAX_CONCURRENCY)),
])
def test_batching_follows_the_cdk_context(tmp_path_factory: pytest.TempPathFactory, context: dict[str, str],
                                          expected: tuple[int, int | None, int]) -> None:
    # GIVEN the app synthesized with -c fanInBatchSize/fanInBatchWindow/fanInConcurrency
    app = build_app(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=context)
    template = Template.from_stack(app.node.find_child(c.STACK_NAME))  # type: ignore[arg-type]
    [mapping] = [r["Properties"] for r in template.find_resources(MAPPING).values()]
    # THEN the event source mapping takes those values
    size, window, concurrency = expected
    assert mapping["BatchSize"] == size
    assert mapping.get("MaximumBatchingWindowInSeconds") == window
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": concurrency}


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0, "batch_window_seconds": 1, "max_concurrency": 10}, "fanInBatchSize must be 1 to 10,000"),
    ({"batch_size": 100, "batch_window_seconds": 301, "max_concurrency": 10}, "fanInBatchWindow must be 0 to 300"),
    ({"batch_size": 100, "batch_window_seconds": 0, "max_concurrency": 10}, "needs a fanInBatchWindow of at least 1"),
    ({"batch_size": 100, "batch_window_seconds": 1, "max_concurrency": 1}, "fanInConcurrency must be 2 to 1,000"),
])
def test_batching_outside_the_event_source_limits_is_refused(settings: dict[str, int], message: str) -> None:
    # GIVEN settings SQS event source mappings do not accept  THEN synthesis stops, naming the option
    with pytest.raises(ValueError, match=message):
        check_batching(**settings)


# ---------------------------------------------------------------------------- Increment


def test_increment_is_an_express_workflow_traced_and_logging_its_errors(
        resources: dict[str, Any], ids: dict[str, str]) -> None:
    props = resources[ids["increment"]]["Properties"]
    # One execution per batch, run synchronously by the consumer: Express (cheaper per batch, no
    # state-transition quota, and the consumer learns the outcome to report partial failures)
    assert props["StateMachineType"] == "EXPRESS"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ERROR"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_increment_counts_the_batch_then_claims_the_finished_requests(
        increment: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the Increment definition, started with {"completions": [...]}
    states = increment["States"]
    # WHEN it starts THEN CountBatch counts the whole batch, retried on throttles and service errors
    assert increment["StartAt"] == "CountBatch"
    count = states["CountBatch"]
    assert count["Resource"].endswith(":states:::lambda:invoke")
    assert count["Parameters"]["FunctionName"] == arn(ids["count"])
    assert count["Parameters"]["Payload"] == {"completions.$": "$.completions"}
    retried = {error for retry in count["Retry"] for error in retry["ErrorEquals"]}
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= retried
    # AND THEN each request whose count reached its target is claimed, one Map iteration each
    summarize = states[count["Next"]]
    assert summarize["Type"] == "Map"
    assert summarize["ItemsPath"] == "$.claims"
    claim_states = summarize["ItemProcessor"]["States"]
    claim = claim_states[summarize["ItemProcessor"]["StartAt"]]
    assert claim["Resource"].endswith(":states:::dynamodb:updateItem")
    params = claim["Parameters"]
    assert params["TableName"] == ref(ids["counter"])
    assert params["ConditionExpression"] == "#status = :running AND #counter >= #target"
    assert params["UpdateExpression"] == "SET #status = :summarizing, #claimedAt = :claimedAt ADD #writes :one"
    assert params["ExpressionAttributeNames"]["#claimedAt"] == c.ATTR_CLAIMED_AT
    assert params["ExpressionAttributeValues"][":summarizing"] == {"S": c.STATUS_SUMMARIZING}
    # AND a claim another batch won ends quietly
    assert claim_states[caught_by(claim, CONDITION_FAILED)]["Type"] == "Succeed"
    # AND the claimant starts Summary asynchronously (an Express execution lasts at most 5 minutes)
    start = claim_states[claim["Next"]]
    assert start["Resource"].endswith(":states:::lambda:invoke")
    assert start["Parameters"]["FunctionName"] == arn(ids["summary"])
    assert start["Parameters"]["InvocationType"] == "Event"
    assert start["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "reason": c.REASON_COMPLETED}
    # AND the execution's output names the messages the queue must deliver again
    done = states[summarize["Next"]]
    assert done["Type"] == "Pass"
    assert done["Parameters"]["failed.$"] == "$.failed"


# ---------------------------------------------------------------------------- IAM


def test_the_consumer_may_start_increment_synchronously_and_read_its_queue(
        template: Template, ids: dict[str, str]) -> None:
    role = role_of(template, ids["consumer"])
    assert allows(template, role, "states:StartSyncExecution", ids["increment"])
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                   "sqs:ChangeMessageVisibility"):
        assert allows(template, role, action, ids["queue"]), action
    assert not allows(template, role, "sqs:SendMessage", ids["queue"])
    assert not allows(template, role, "dynamodb:*", ids["counter"])


def test_count_batch_reads_consistently_and_counts_in_one_transaction(
        template: Template, ids: dict[str, str], resources: dict[str, Any]) -> None:
    role = role_of(template, ids["count"])
    for table in ("counter", "results"):
        assert allows(template, role, "dynamodb:BatchGetItem", ids[table]), table
        assert allows(template, role, "dynamodb:UpdateItem", ids[table]), table
    env = resources[ids["count"]]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_COUNTER_TABLE] == {"Ref": ids["counter"]}
    assert env[c.ENV_RESULTS_TABLE] == {"Ref": ids["results"]}


def test_an_alarm_watches_the_buffers_dead_letters(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the alarms  THEN one watches the completion dead-letter queue, by arrivals: messages a
    # redrive policy moves are not counted in NumberOfMessagesSent, so a rise in its depth
    alarms = [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    [watching] = [a for a in alarms if references(a, ids["dlq"])]
    metrics = [m["MetricStat"]["Metric"] for m in watching.get("Metrics", []) if "MetricStat" in m]
    assert {m["MetricName"] for m in metrics} == {"ApproximateNumberOfMessagesVisible"}
    assert all(m["Namespace"] == "AWS/SQS" for m in metrics)
    assert "Completions dead-letter queue" in watching["AlarmDescription"]
    assert watching["AlarmActions"], json.dumps(watching)[:300]


# ---------------------------------------------------------------------------- rules vs documented events


def concrete(pattern: Any, arns: dict[str, str]) -> Any:
    """A rendered event pattern with each function's Fn::GetAtt Arn replaced by a concrete ARN."""
    if isinstance(pattern, dict):
        if "Fn::Join" in pattern:
            separator, parts = pattern["Fn::Join"]
            return separator.join(concrete(part, arns) for part in parts)
        if "Fn::GetAtt" in pattern:
            return arns[pattern["Fn::GetAtt"][0]]
        return {key: concrete(value, arns) for key, value in pattern.items()}
    if isinstance(pattern, list):
        return [concrete(item, arns) for item in pattern]
    return pattern


def rule_matching(template: Template, source: str) -> Any:
    from moto.events.models import EventPattern

    [rule] = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
              if r["Properties"]["EventPattern"].get("source") == [source]]
    return rule, EventPattern


def test_the_completion_rule_matches_a_completion_as_eventbridge_delivers_it(template: Template) -> None:
    rule, pattern = rule_matching(template, c.COMPUTE_SOURCE)
    event = documented.completion_event({"requestId": "r", "request": {"caseId": "0"}, "state": c.CASE_SUCCEEDED,
                                         "error": ""})
    assert pattern.load(json.dumps(rule["EventPattern"])).matches_event(event)


def test_the_failure_rule_matches_lambda_s_documented_record_and_only_for_compute_functions(
        template: Template, resources: dict[str, Any]) -> None:
    # GIVEN the failure rule's pattern, with the compute functions' ARNs in place of their tokens
    rule, pattern = rule_matching(template, c.LAMBDA_DESTINATION_SOURCE)
    functions = {lid: f"arn:aws:lambda:us-east-1:123456789012:function:{lid}"
                 for lid, r in resources.items() if r["Type"] == FUNCTION}
    matcher = pattern.load(json.dumps(concrete(rule["EventPattern"], functions)))
    compute = logical_id(template, FUNCTION, "ComputeFunction")
    summary = logical_id(template, FUNCTION, "SummaryFunction")
    # THEN Lambda's failure record for the Compute function matches, for a crash and for an
    # event that expired before it ran (which has no responsePayload)
    for payload in ({"errorMessage": "boom", "errorType": "RuntimeError"}, None):
        assert matcher.matches_event(documented.failure_record(payload, function_arn=functions[compute]))
    # AND not another function's record
    assert not matcher.matches_event(documented.failure_record({"errorMessage": "x"},
                                                               function_arn=functions[summary]))
    # AND not a record naming the unqualified ARN, which Lambda does not send (the rule once
    # matched that, and so no real record)
    unqualified = documented.failure_record({"errorMessage": "x"}, function_arn=functions[compute])
    unqualified["resources"] = [functions[compute]]
    assert not matcher.matches_event(unqualified)
