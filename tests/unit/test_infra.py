"""The synthesized CloudFormation of the fanflow stack: the workflows' ASL, the event
routing, least-privilege IAM, storage settings, cdk-nag and cfn-lint. No AWS, no network:
the stack is built in-process once per module."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint_file

from lambda_fns import constants as c
from tests.cfn import (
    Synthesized,
    allows,
    arn,
    caught_by,
    definition,
    logical_id,
    ref,
    references,
    role_actions,
    role_of,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_WITHOUT_ACCOUNT = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
FUNCTION = "AWS::Lambda::Function"
TABLE = "AWS::DynamoDB::Table"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"  # optimized DynamoDB integrations


# ---------------------------------------------------------------------------- helpers


def rule_by_source(template: Template, source: str) -> dict[str, Any]:
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
             if r["Properties"]["EventPattern"].get("source") == [source]]
    assert len(rules) == 1, f"expected one rule for source {source!r}, found {len(rules)}"
    return rules[0]


def required_env(module: str) -> set[str]:
    """The variables a handler reads at cold start: the names it passes to require_env."""
    tree = ast.parse((Path(c.__file__).parent / f"{module}.py").read_text())
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "require_env"]
    assert len(calls) == 1, f"lambda_fns/{module}.py should call require_env once"
    names = calls[0].args[0]
    assert isinstance(names, ast.List)
    return {getattr(c, element.attr) for element in names.elts if isinstance(element, ast.Attribute)}


def nag_findings(messages: list[Any]) -> str:
    return "\n".join(f"{m.id}: {m.entry.data}" for m in messages)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def preprocess(template: Template) -> dict[str, Any]:
    return definition(template, "PreProcess")


@pytest.fixture(scope="module")
def increment(template: Template) -> dict[str, Any]:
    return definition(template, "Increment")


@pytest.fixture(scope="module")
def ids(template: Template) -> dict[str, str]:
    """Logical ids of the resources the assertions talk about."""
    return {
        "counter": logical_id(template, TABLE, "CounterTable"),
        "results": logical_id(template, TABLE, "ResultsTable"),
        "bucket": logical_id(template, "AWS::S3::Bucket", "ArtifactsBucket"),
        "bus": logical_id(template, "AWS::Events::EventBus", "Bus"),
        "queue": logical_id(template, "AWS::SQS::Queue", "DeadLetterQueue"),
        "compute": logical_id(template, FUNCTION, "ComputeFunction"),
        "compute_large": logical_id(template, FUNCTION, "ComputeLargeFunction"),
        "step": logical_id(template, FUNCTION, "ComputeWorkflowStepFunction"),
        "work_queue": logical_id(template, "AWS::SQS::Queue", "ComputeQueueWorkQueue"),
        "worker_policy": logical_id(template, "AWS::IAM::ManagedPolicy", "WorkerPolicy"),
        "summary": logical_id(template, FUNCTION, "SummaryFunction"),
        "prepare": logical_id(template, FUNCTION, "PrepareFunction"),
        "emit": logical_id(template, FUNCTION, "EmitFunction"),
        "preprocess": logical_id(template, STATE_MACHINE, "PreProcess"),
        "increment": logical_id(template, STATE_MACHINE, "Increment"),
        "count": logical_id(template, FUNCTION, "CountFunction"),
        "consumer": logical_id(template, FUNCTION, "ConsumerFunction"),
        "completion_queue": logical_id(template, "AWS::SQS::Queue", "CompletionQueue"),
        "completion_dlq": logical_id(template, "AWS::SQS::Queue", "CompletionDeadLetters"),
    }


# ---------------------------------------------------------------------------- PreProcess (fan-out)


def test_preprocess_prepares_then_opens_the_request_once(preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN it starts THEN Prepare validates the request, and a RequestError ends it as InvalidRequest
    assert preprocess["StartAt"] == "Prepare"
    prepare = states["Prepare"]
    assert prepare["Resource"].endswith(":states:::lambda:invoke")
    assert prepare["Parameters"]["FunctionName"] == arn(ids["prepare"])
    rejected = states[caught_by(prepare, "RequestError")]
    assert rejected["Type"] == "Fail"
    assert rejected["Error"] == "InvalidRequest"
    # AND THEN OpenRequest writes the counter row only if it does not exist yet
    assert prepare["Next"] == "OpenRequest"
    open_request = states["OpenRequest"]
    assert open_request["Resource"].endswith(":states:::dynamodb:putItem")
    params = open_request["Parameters"]
    assert params["TableName"] == ref(ids["counter"])
    assert params["ConditionExpression"] == "attribute_not_exists(#requestId)"
    assert params["ExpressionAttributeNames"] == {"#requestId": c.ATTR_REQUEST_ID}
    exists = states[caught_by(open_request, CONDITION_FAILED)]
    assert exists["Type"] == "Fail"
    assert exists["Error"] == "RequestAlreadyExists"
    # AND the new row starts at zero, RUNNING, with the planned target
    item = params["Item"]
    assert item[c.ATTR_REQUEST_ID] == {"S.$": "$.requestId"}
    assert item[c.ATTR_COUNTER] == {"N": "0"}
    assert item[c.ATTR_SUCCEEDED] == {"N": "0"}
    assert item[c.ATTR_FAILED] == {"N": "0"}
    assert item[c.ATTR_STATUS] == {"S": c.STATUS_RUNNING}
    assert item[c.ATTR_TARGET] == {"N.$": "$.target"}
    assert item[c.ATTR_EXPIRES_AT] == {"N.$": "$.expiresAt"}


def test_preprocess_fans_out_batches_with_bounded_concurrency(preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN the request is open THEN FanOut maps over the planned batches, at most N at a time
    assert states["OpenRequest"]["Next"] == "FanOut"
    fan_out = states["FanOut"]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemsPath"] == "$.batches"
    assert fan_out["MaxConcurrency"] == c.FANOUT_MAX_CONCURRENCY
    # AND each iteration invokes EmitBatch, retried when the function fails
    processor = fan_out["ItemProcessor"]
    assert processor["StartAt"] == "EmitBatch"
    emit = processor["States"]["EmitBatch"]
    assert emit["Resource"].endswith(":states:::lambda:invoke")
    assert emit["Parameters"]["FunctionName"] == arn(ids["emit"])
    assert any("States.TaskFailed" in retry["ErrorEquals"] and retry["MaxAttempts"] >= 1 for retry in emit["Retry"])


def test_preprocess_times_out_an_open_request_at_its_deadline(preprocess: dict[str, Any], ids: dict[str, str]) -> None:
    # GIVEN the rendered PreProcess definition
    states = preprocess["States"]
    # WHEN the cases are emitted THEN it waits until the request's deadline
    wait = states["AwaitDeadline"]
    assert wait["Type"] == "Wait"
    assert wait["TimestampPath"] == "$.deadlineIso"
    # AND THEN it claims the request unless it is closed (a SUMMARIZING row at the deadline
    # means Summary failed and must run again); a closed request ends successfully
    assert wait["Next"] == "ClaimTimeout"
    claim = states["ClaimTimeout"]
    assert claim["Resource"].endswith(":states:::dynamodb:updateItem")
    assert claim["Parameters"]["TableName"] == ref(ids["counter"])
    assert claim["Parameters"]["ConditionExpression"] == "#status IN (:running, :summarizing)"
    assert claim["Parameters"]["ExpressionAttributeValues"][":running"] == {"S": c.STATUS_RUNNING}
    assert claim["Parameters"]["ExpressionAttributeValues"][":summarizing"] == {"S": c.STATUS_SUMMARIZING}
    assert states[caught_by(claim, CONDITION_FAILED)]["Type"] == "Succeed"
    # AND a claimed request is summarized as timed out
    summarize = states[claim["Next"]]
    assert claim["Next"] == "SummarizeTimedOut"
    assert summarize["Resource"].endswith(":states:::lambda:invoke")
    assert summarize["Parameters"]["FunctionName"] == arn(ids["summary"])
    assert summarize["Parameters"]["Payload"] == {"requestId.$": "$.requestId", "reason": c.REASON_TIMED_OUT}
    assert summarize.get("End") is True


# ---------------------------------------------------------------------------- Increment (fan-in)
# The batched fan-in (queue, event source mapping, Increment's definition): tests/unit/test_fan_in_infra.py


def test_preprocess_is_standard_traced_and_logs_every_event(template: Template) -> None:
    # GIVEN the fan-out workflow WHEN it is synthesized THEN it is a Standard state machine with X-Ray
    # and full logging (its history is the request's record)
    props = template.to_json()["Resources"][logical_id(template, STATE_MACHINE, "PreProcess")]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["Destinations"], "execution logs need a log group"


# ---------------------------------------------------------------------------- routing


def test_case_events_are_routed_to_the_compute_function(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule for fan-out events that the Compute function receives (the default compute
    # target; tests/unit/test_compute_targets_infra.py covers the others)
    [rule] = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
              if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [ids["compute"], "Arn"]}]
    # WHEN a case event arrives THEN it matches on source and detail-type and goes to compute,
    # unless its case names another compute target
    assert rule["EventPattern"]["source"] == [c.PREPROCESS_SOURCE]
    assert rule["EventPattern"]["detail-type"] == [c.CASE_DETAIL_TYPE]
    others = [t for t in c.COMPUTE_TYPES if t != c.DEFAULT_COMPUTE_TYPE]
    assert rule["EventPattern"]["detail"] == {"request": {"$or": [
        {c.ATTR_COMPUTE_TYPE: [{"exists": False}]}, {c.ATTR_COMPUTE_TYPE: [{"anything-but": others}]}]}}
    assert references(rule["EventBusName"], ids["bus"])
    [target] = rule["Targets"]
    # AND undeliverable events are retried, then dead-lettered, and delivered whole
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == c.RULE_TARGET_RETRY_ATTEMPTS
    assert "Input" not in target


def test_completion_events_go_whole_to_the_fan_in_buffer(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule for completion events
    rule = rule_by_source(template, c.COMPUTE_SOURCE)
    assert references(rule["EventBusName"], ids["bus"])
    # WHEN a completion arrives THEN it goes to the completion queue, retried and dead-lettered as
    # every rule target is
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ids["completion_queue"], "Arn"]}
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": c.RULE_TARGET_RETRY_ATTEMPTS,
                                     "MaximumEventAgeInSeconds": c.RULE_TARGET_MAX_EVENT_AGE_SECONDS}
    # AND the message body is the whole event: the consumer reads the case and its state from it
    for rewriting in ("InputPath", "InputTransformer", "Input"):
        assert rewriting not in target, f"the completion target must not set {rewriting}"


def test_compute_failures_after_retries_reach_the_fan_in_buffer(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the compute function's asynchronous invoke configuration
    [props] = [config["Properties"] for config in template.find_resources("AWS::Lambda::EventInvokeConfig").values()
               if config["Properties"]["FunctionName"] == {"Ref": ids["compute"]}]
    # WHEN an invocation still fails after its retries THEN the failure record goes to the bus
    assert props["MaximumRetryAttempts"] == c.COMPUTE_ASYNC_RETRIES
    assert references(props["DestinationConfig"]["OnFailure"]["Destination"], ids["bus"])
    # AND a rule matches those records by the qualified ARN they name (`...:$LATEST`), for the
    # compute functions only
    rule = rule_by_source(template, c.LAMBDA_DESTINATION_SOURCE)
    assert rule["EventPattern"]["detail-type"] == [c.LAMBDA_FAILURE_DETAIL_TYPE]
    assert rule["EventPattern"]["resources"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [ids[f], "Arn"]}, ":$LATEST"]]} for f in ("compute", "compute_large")]
    # AND sends each record whole to the fan-in buffer, where it counts as a FAILED case
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ids["completion_queue"], "Arn"]}
    assert references(target["DeadLetterConfig"]["Arn"], ids["queue"])
    assert "InputTransformer" not in target and "Input" not in target


# ---------------------------------------------------------------------------- IAM


def test_increment_role_may_count_claim_and_summarize(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role the Increment state machine runs as
    role = role_of(template, ids["increment"])
    # WHEN it counts a batch THEN it may invoke CountBatch; it claims a request on the counter row
    assert allows(template, role, "lambda:InvokeFunction", ids["count"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND it may start Summary
    assert allows(template, role, "lambda:InvokeFunction", ids["summary"])
    # AND nothing else: the counting itself is CountBatch's
    assert not allows(template, role, "dynamodb:UpdateItem", ids["results"])
    assert not any(fnmatchcase("dynamodb:DeleteItem", action) for action in role_actions(template, role))


def test_count_role_may_read_and_count_but_not_delete(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role of CountBatch
    role = role_of(template, ids["count"])
    # THEN it may read the batch's rows and update both tables (a transaction is authorised per item)
    for table in ("counter", "results"):
        assert allows(template, role, "dynamodb:BatchGetItem", ids[table]), table
        assert allows(template, role, "dynamodb:UpdateItem", ids[table]), table
    assert not any(fnmatchcase(action, "dynamodb:*Delete*") or action == "dynamodb:*"
                   for action in role_actions(template, role))


def test_preprocess_role_may_open_and_close_requests(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role the PreProcess state machine runs as
    role = role_of(template, ids["preprocess"])
    # WHEN it opens and times out a request THEN it may put and update the counter row
    assert allows(template, role, "dynamodb:PutItem", ids["counter"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND it may invoke the functions it orchestrates
    for function in ("prepare", "emit", "summary"):
        assert allows(template, role, "lambda:InvokeFunction", ids[function]), function
    # AND it has no business with the results table
    assert not allows(template, role, "dynamodb:*", ids["results"])


def test_compute_role_is_least_privilege(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role of the compute function
    role = role_of(template, ids["compute"])
    # WHEN it records a case and reports completion THEN it may put results rows and events on the bus
    assert allows(template, role, "events:PutEvents", ids["bus"])
    assert allows(template, role, "dynamodb:PutItem", ids["results"])
    # AND nothing broader: no deletes, no dynamodb:*, no access to the counter table
    actions = role_actions(template, role)
    assert "dynamodb:*" not in actions
    assert not any(fnmatchcase("dynamodb:DeleteItem", action) for action in actions), actions
    assert not allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    assert not allows(template, role, "dynamodb:PutItem", ids["counter"])


def test_summary_role_may_read_results_and_close_the_request(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the role of the summary function
    role = role_of(template, ids["summary"])
    # WHEN it aggregates a request THEN it may query results and read and close the counter row
    assert allows(template, role, "dynamodb:Query", ids["results"])
    assert allows(template, role, "dynamodb:GetItem", ids["counter"])
    assert allows(template, role, "dynamodb:UpdateItem", ids["counter"])
    # AND publish the summary object and event
    assert allows(template, role, "s3:PutObject", ids["bucket"])
    assert allows(template, role, "events:PutEvents", ids["bus"])


# ---------------------------------------------------------------------------- storage


@pytest.mark.parametrize("table", ["counter", "results"])
def test_tables_are_encrypted_recoverable_expiring_and_on_demand(
    template: Template, ids: dict[str, str], table: str
) -> None:
    # GIVEN a table WHEN it is synthesized THEN it is encrypted, has PITR and TTL, and is on-demand
    props = template.to_json()["Resources"][ids[table]]["Properties"]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": c.ATTR_EXPIRES_AT, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_table_keys(template: Template, ids: dict[str, str]) -> None:
    # GIVEN both tables THEN the counter is keyed by request, results by request and case
    resources = template.to_json()["Resources"]
    assert resources[ids["counter"]]["Properties"]["KeySchema"] == [
        {"AttributeName": c.ATTR_REQUEST_ID, "KeyType": "HASH"},
    ]
    assert resources[ids["results"]]["Properties"]["KeySchema"] == [
        {"AttributeName": c.ATTR_REQUEST_ID, "KeyType": "HASH"},
        {"AttributeName": c.ATTR_CASE_ID, "KeyType": "RANGE"},
    ]


def test_artifacts_bucket_is_private_encrypted_expiring_and_tls_only(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the artifacts bucket
    props = template.to_json()["Resources"][ids["bucket"]]["Properties"]
    # THEN objects are encrypted, public access is blocked and objects expire
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }
    assert any(rule["Status"] == "Enabled" and rule.get("ExpirationInDays", 0) > 0
               for rule in props["LifecycleConfiguration"]["Rules"])
    # AND its policy denies any request not made over TLS
    template.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": ids["bucket"]},
        "PolicyDocument": Match.object_like({"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])}),
    })


def test_dead_letter_queue_is_encrypted(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the rule targets' dead-letter queue THEN it is encrypted with SQS-managed keys
    assert template.to_json()["Resources"][ids["queue"]]["Properties"]["SqsManagedSseEnabled"] is True


# ---------------------------------------------------------------------------- functions


def test_functions_run_python_312_with_tracing(template: Template) -> None:
    # GIVEN every Lambda function of the stack THEN each runs Python 3.12 with active X-Ray tracing
    functions = template.find_resources(FUNCTION)
    assert functions
    for lid, function in functions.items():
        assert function["Properties"]["Runtime"] == "python3.12", lid
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, lid


def test_compute_function_keeps_the_seed_environment(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the compute function WHEN it starts THEN it finds the seed's variables and its own
    env = template.to_json()["Resources"][ids["compute"]]["Properties"]["Environment"]["Variables"]
    assert env[c.ENV_EVENTBUS_NAME] == {"Ref": ids["bus"]}
    assert env[c.ENV_EVENTBUS_ARN] == {"Fn::GetAtt": [ids["bus"], "Arn"]}
    assert env[c.ENV_EVENTBUS_SOURCE] == c.COMPUTE_SOURCE
    assert env[c.ENV_EVENTBUS_DETAILTYPE] == c.COMPLETION_DETAIL_TYPE
    assert float(env[c.ENV_COMPUTE_SECONDS]) == c.COMPUTE_SECONDS_AWS
    assert env[c.ENV_RESULTS_TABLE] == {"Ref": ids["results"]}


def test_every_function_gets_the_environment_its_handler_requires(template: Template) -> None:
    # GIVEN each function and the variables its handler module passes to require_env
    for lid, function in template.find_resources(FUNCTION).items():
        package, module, _ = function["Properties"]["Handler"].split(".")
        assert package == "lambda_fns", lid
        # WHEN it cold-starts THEN every required variable is set
        provided = set(function["Properties"]["Environment"]["Variables"])
        assert required_env(module) <= provided, f"{lid} lacks {required_env(module) - provided}"


# ---------------------------------------------------------------------------- outputs


def test_outputs_name_every_resource_clients_need(template: Template, ids: dict[str, str]) -> None:
    # GIVEN the stack outputs THEN every documented output exists and points at its resource
    expected = {
        c.OUTPUT_PREPROCESS_ARN: ids["preprocess"],
        c.OUTPUT_INCREMENT_ARN: ids["increment"],
        c.OUTPUT_COUNTER_TABLE: ids["counter"],
        c.OUTPUT_RESULTS_TABLE: ids["results"],
        c.OUTPUT_BUS_NAME: ids["bus"],
        c.OUTPUT_ARTIFACTS_BUCKET: ids["bucket"],
        c.OUTPUT_COMPUTE_FUNCTION: ids["compute"],
        c.OUTPUT_SUMMARY_FUNCTION: ids["summary"],
    }
    expected[c.OUTPUT_FAN_IN_CONSUMER] = ids["consumer"]
    attributes = {  # outputs that are an attribute of their resource, not its Ref
        c.OUTPUT_COMPLETION_QUEUE_URL: ids["completion_queue"],
        c.OUTPUT_COMPLETION_DLQ_URL: ids["completion_dlq"],
        c.OUTPUT_WORK_QUEUE_URL: ids["work_queue"],
        c.OUTPUT_WORKER_POLICY_ARN: ids["worker_policy"],
    }
    compute_functions = [ids["compute"], ids["compute_large"], ids["step"]]
    documented = {value for name, value in vars(c).items() if name.startswith("OUTPUT_")}
    assert set(expected) | set(attributes) | {c.OUTPUT_COMPUTE_FUNCTIONS} == documented, \
        "a new OUTPUT_* constant needs an expectation here"
    outputs = template.find_outputs("*")
    for name, lid in {**expected, **attributes}.items():
        assert name in outputs, f"missing output {name}"
        assert references(outputs[name]["Value"], lid), name
    for name, lid in expected.items():
        assert outputs[name]["Value"] == {"Ref": lid}, name
    # AND the compute functions (whose COMPUTE_SECONDS `--compute-seconds` sets) are listed together
    assert outputs[c.OUTPUT_COMPUTE_FUNCTIONS]["Value"] == {"Fn::Join": [",", [{"Ref": f} for f in compute_functions]]}


# ---------------------------------------------------------------------------- compliance


def test_cdk_nag_reports_no_unsuppressed_errors(synthesized: Synthesized) -> None:
    # GIVEN the AwsSolutions checks applied to the stack WHEN it synthesizes THEN no error is left
    errors = synthesized.annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not errors, nag_findings(errors)


def test_cdk_nag_reports_no_unsuppressed_warnings(synthesized: Synthesized) -> None:
    # GIVEN the AwsSolutions checks applied to the stack WHEN it synthesizes THEN no warning is left
    warnings = synthesized.annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert not warnings, nag_findings(warnings)


def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    # GIVEN the synthesized template file WHEN cfn-lint checks it THEN it reports no error
    matches = lint_file(synthesized.template_file, config=ManualArgs(regions=["us-east-1"]))
    errors = [m for m in matches if m.rule.severity == "error"]
    assert not errors, "\n".join(str(m) for m in errors)
    # AND the only warnings are W3005 (the redundant DependsOn CDK adds next to a GetAtt of the role)
    unexpected = [m for m in matches if m.rule.severity == "warning" and m.rule.id != "W3005"]
    assert not unexpected, "\n".join(str(m) for m in unexpected)


def test_synthesis_needs_no_credentials(tmp_path: Path) -> None:
    # GIVEN an environment without AWS credentials, profile or instance metadata
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ENV_WITHOUT_ACCOUNT}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        CDK_OUTDIR=str(tmp_path / "cdk.out"),
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    # WHEN the CDK app runs as `cdk synth` would run it
    result = subprocess.run([sys.executable, "infra/app.py"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    # THEN it succeeds and writes the stack template
    assert result.returncode == 0, result.stderr[-4000:]
    template_file = tmp_path / "cdk.out" / f"{c.STACK_NAME}.template.json"
    assert template_file.is_file()
    assert json.loads(template_file.read_text())["Resources"]
