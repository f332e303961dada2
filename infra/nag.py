"""cdk-nag's AwsSolutions checks, with each accepted finding suppressed once, next to
its reason. Synthesis fails on any finding not listed here."""

from __future__ import annotations

from aws_cdk import Aspects, Stack
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions

SUPPRESSIONS = [
    NagPackSuppression(
        id="AwsSolutions-IAM4",
        reason="AWSLambdaBasicExecutionRole only allows writing the function's own logs.",
        applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    ),
    NagPackSuppression(
        id="AwsSolutions-IAM5",
        reason=(
            "Wildcards are scoped: X-Ray and CloudWatch Logs delivery accept only '*'; S3 grants are "
            "limited to the manifests/ and summaries/ prefixes; Lambda invoke grants cover the "
            "function's versions."
        ),
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


def apply_nag(stack: Stack) -> None:
    Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    NagSuppressions.add_stack_suppressions(stack, SUPPRESSIONS)
