"""cdk-nag's AwsSolutions checks, with each accepted finding suppressed once, next to its
reason. Synthesis fails on any finding not listed here.

IAM wildcards (AwsSolutions-IAM5) are never suppressed for the whole stack: each IAM policy gets
a suppression for exactly the wildcards it holds, and only for the kinds of wildcard below, read
from the policy itself, so a new wildcard of another kind is reported. A per-case workflow that
logs errors only (AwsSolutions-SF1) is suppressed on that workflow alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from aws_cdk import Aspects, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions

SUPPRESSIONS = [
    NagPackSuppression(
        id="AwsSolutions-IAM4",
        reason="AWSLambdaBasicExecutionRole only allows writing the function's own logs.",
        applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    ),
    NagPackSuppression(
        id="AwsSolutions-S1",
        reason="The artifacts bucket holds short-lived manifests and summaries; access is via IAM "
        "roles of this stack, and CloudTrail covers it. Server access logs would need a second bucket.",
    ),
    NagPackSuppression(
        id="AwsSolutions-SQS3",
        reason="This queue is itself the dead-letter queue of the rule targets.",
    ),
    NagPackSuppression(
        id="AwsSolutions-L1",
        reason="Python 3.12 is the runtime the project targets and tests against.",
    ),
]

# Actions that accept no resource but '*'.
UNSCOPED_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray tracing of functions and workflows
    "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",  # a workflow's execution logging
    "cloudwatch:PutMetricData",  # PreProcess counting a rejected request, held to fanflow's namespace
}
UNSCOPED = "X-Ray tracing, a workflow's log delivery and CloudWatch PutMetricData accept only '*'"
FUNCTION_VERSIONS = "A Lambda invoke grant covers the function's versions and aliases (<function ARN>:*)."
PREFIXES = ("/requests/*", "/chunks/*", "/manifests/*", "/summaries/*")
PREFIXED = ("S3 grants are limited to the requests/, chunks/, manifests/ and summaries/ prefixes of the "
            "artifacts bucket (and, for reading requests, the buckets the deployment names).")
# Requests stored in a bucket the deployment names (-c requestBuckets): any key of it, read only.
REQUEST_BUCKET = re.compile(r"arn:<AWS::Partition>:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\*")
REQUEST_BUCKETS = ("Prepare reads a request by reference from the buckets the deployment names "
                   "(-c requestBuckets), wherever the caller stored it: GetObject only.")
# A Distributed Map's child executions are named by Step Functions at run time: its parent may
# describe, stop and redrive the executions of its own state machine (and of its map's label) only.
MAP_RUN_ACTIONS = {"states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"}
MAP_RUNS = ("A Distributed Map manages its child executions, named at run time: the grant covers the "
            "executions of its own state machine only.")
S3_ACTION_FAMILIES = {
    "s3:Abort*": "Putting an object includes aborting its own multipart upload.",
}
ERROR_LOGGING = ("A per-case (or per-batch) workflow logs its errors only: at ALL, its execution events "
                 "would be most of the stack's log volume; PreProcess, one execution per request, logs ALL.")


def apply_nag(stack: Stack) -> None:
    Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    NagSuppressions.add_stack_suppressions(stack, SUPPRESSIONS)
    for construct in stack.node.find_all():
        if isinstance(construct, iam.CfnPolicy | iam.CfnManagedPolicy):
            suppressions = list(_wildcard_suppressions(stack.resolve(construct.policy_document)))
            if suppressions:
                NagSuppressions.add_resource_suppressions(construct, suppressions)
        elif isinstance(construct, sfn.CfnStateMachine):
            logging = stack.resolve(construct.logging_configuration) or {}
            if logging.get("level") == "ERROR":
                NagSuppressions.add_resource_suppressions(construct, [
                    NagPackSuppression(id="AwsSolutions-SF1", reason=ERROR_LOGGING)])


def _wildcard_suppressions(document: dict[str, Any]) -> Iterator[NagPackSuppression]:
    """An IAM5 suppression for each wildcard of an accepted kind in the policy document."""
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        resources = [_rendered(resource) for resource in _as_list(statement.get("Resource"))]
        if "*" in resources and set(actions) <= UNSCOPED_ACTIONS:
            yield _iam5("Resource::*", UNSCOPED)
        if actions == ["lambda:InvokeFunction"]:
            for resource in resources:
                if resource.endswith(".Arn>:*"):
                    yield _iam5(f"Resource::{resource}", FUNCTION_VERSIONS)
        if actions and set(actions) <= MAP_RUN_ACTIONS:
            for resource in resources:
                if ":states:" in resource and ":execution:" in resource and resource.endswith(":*"):
                    yield _iam5(f"Resource::{resource}", MAP_RUNS)
        if actions == ["s3:GetObject"]:
            for resource in resources:
                if REQUEST_BUCKET.fullmatch(resource):
                    yield _iam5(f"Resource::{resource}", REQUEST_BUCKETS)
        if actions and all(action.startswith("s3:") for action in actions):
            prefixed = [resource for resource in resources if resource.endswith(PREFIXES)]
            for resource in prefixed:
                yield _iam5(f"Resource::{resource}", PREFIXED)
            if prefixed:
                for action in actions:
                    if action in S3_ACTION_FAMILIES:
                        yield _iam5(f"Action::{action}", S3_ACTION_FAMILIES[action])


def _iam5(finding: str, reason: str) -> NagPackSuppression:
    return NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=[finding])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _rendered(value: Any) -> str:
    """A resource as cdk-nag names it in a finding: tokens as <LogicalId.Attr> or <LogicalId>."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_rendered(part) for part in parts)
    return json.dumps(value, separators=(",", ":"))  # as cdk-nag writes any other intrinsic
