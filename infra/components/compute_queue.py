"""A queue compute target: fan-out events wait in an encrypted SQS queue for `fanflow worker`,
which runs anywhere (a container, an instance, a laptop) and has no Lambda time limit. The
worker reports each case like the Compute function does; a message that keeps failing to
be processed ends in the queue's own dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.grants import put_events_statement, result_write_statements
from lambda_fns import constants as c


class ComputeQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bus: events.IEventBus,
                 results_table: dynamodb.ITable, compute_type: str = c.COMPUTE_TYPE_QUEUE,
                 visibility_timeout_seconds: int = c.WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS) -> None:
        super().__init__(scope, construct_id)
        self.compute_type = compute_type
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self, "WorkQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # A worker extends its message's visibility while it works (its heartbeat); this
            # is how long a dead worker's case waits before another worker receives it.
            visibility_timeout=Duration.seconds(visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue,
                                                  max_receive_count=c.WORK_QUEUE_MAX_RECEIVES),
        )
        # What a worker may do, wherever it runs: attach this policy to its role.
        self.worker_policy = iam.ManagedPolicy(
            self, "WorkerPolicy",
            description=f"fanflow: what `fanflow worker` needs to compute the {compute_type!r} cases",
            statements=[
                iam.PolicyStatement(actions=["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility",
                                             "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                                    resources=[self.queue.queue_arn]),
                *result_write_statements(results_table),
                put_events_statement(bus, source=c.COMPUTE_SOURCE, detail_type=c.COMPLETION_DETAIL_TYPE),
            ],
        )
