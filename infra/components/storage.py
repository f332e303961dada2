"""Where request state lives: the counter table (one row per request), the results
table (one row per case, keyed by the request's shard and the caseId) and the artifacts
bucket (stored requests, their chunks and manifests, and summaries)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lambda_fns import constants as c


class RequestStore(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int,
                 removal_policy: RemovalPolicy = RemovalPolicy.DESTROY) -> None:
        super().__init__(scope, construct_id)
        common = dict(
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=c.ATTR_EXPIRES_AT,
            removal_policy=removal_policy,
        )
        self.counter_table = dynamodb.Table(
            self, "CounterTable",
            partition_key=dynamodb.Attribute(name=c.ATTR_REQUEST_ID, type=dynamodb.AttributeType.STRING),
            **common,  # type: ignore[arg-type]
        )
        # Write sharding: a request's rows spread over its shards' partitions (lambda_fns/keys.py).
        self.results_table = dynamodb.Table(
            self, "ResultsTable",
            partition_key=dynamodb.Attribute(name=c.ATTR_REQUEST_SHARD, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=c.ATTR_CASE_ID, type=dynamodb.AttributeType.STRING),
            **common,  # type: ignore[arg-type]
        )
        self.artifacts_bucket = s3.Bucket(
            self, "ArtifactsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
            removal_policy=removal_policy,
        )
