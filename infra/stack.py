"""The fanflow stack: reads like the architecture diagram, one construct per concern."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_events as events
from constructs import Construct

from infra.components.compute import ComputeFunction
from infra.components.compute_queue import ComputeQueue
from infra.components.compute_targets import ComputeBackend, ComputeBackends
from infra.components.compute_workflow import ComputeWorkflow
from infra.components.concurrency import ConcurrencyPlan
from infra.components.fan_in import FanInWorkflow
from infra.components.fan_out import FanOutWorkflow
from infra.components.lifecycle import CancelWorkflow
from infra.components.monitoring import DeadLetterFeed, FunctionRole, PipelineMonitoring, alarm_topic
from infra.components.routing import EventRouting
from infra.components.storage import RequestStore
from lambda_fns import constants as c


class FanflowStack(Stack):
    def __init__(self, scope: Construct, construct_id: str = c.STACK_NAME, *,
                 compute_seconds: float = c.COMPUTE_SECONDS_AWS,
                 retention_days: int = c.DEFAULT_RETENTION_DAYS, alarm_email: str | None = None,
                 alarm_topic_arn: str | None = None,
                 trace_sampling_rate: float = c.DEFAULT_XRAY_SAMPLING_RATE,
                 concurrency: ConcurrencyPlan | None = None,
                 fan_in_batch_size: int = c.FAN_IN_BATCH_SIZE,
                 fan_in_batch_window_seconds: int = c.FAN_IN_BATCH_WINDOW_SECONDS,
                 fan_in_concurrency: int = c.FAN_IN_MAX_CONCURRENCY,
                 fan_out_concurrency: int = c.FANOUT_MAX_CONCURRENCY,
                 request_buckets: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        retention_seconds = retention_days * 86_400
        concurrency = concurrency or ConcurrencyPlan()

        store = RequestStore(self, "Store", retention_days=retention_days)
        routing = EventRouting(self, "Routing")
        fan_in = FanInWorkflow(self, "FanIn", counter_table=store.counter_table,
                               results_table=store.results_table, artifacts_bucket=store.artifacts_bucket,
                               bus=routing.bus, batch_size=fan_in_batch_size,
                               batch_window_seconds=fan_in_batch_window_seconds, max_concurrency=fan_in_concurrency)
        fan_out = FanOutWorkflow(self, "FanOut", counter_table=store.counter_table,
                                 results_table=store.results_table, artifacts_bucket=store.artifacts_bucket,
                                 bus=routing.bus, summary_function=fan_in.summary_function,
                                 retention_seconds=retention_seconds, compute_concurrency=concurrency.compute_ceiling,
                                 fan_out_concurrency=fan_out_concurrency, request_buckets=request_buckets)
        routing.route_completions_to(fan_in.queue)
        cancel = CancelWorkflow(self, "Cancel", lifecycle_function=fan_out.lifecycle_function,
                                summary_function=fan_in.summary_function, preprocess=fan_out.state_machine)

        # Compute targets: each case goes to the one its computeType names, else to Compute.
        results, seconds = store.results_table, compute_seconds
        compute = ComputeFunction(self, "Compute", bus=routing.bus, results_table=results, compute_seconds=seconds)
        compute_large = ComputeFunction(
            self, "ComputeLarge", bus=routing.bus, results_table=results, compute_seconds=seconds,
            compute_type=c.COMPUTE_TYPE_LAMBDA_LARGE, memory_mb=1769,  # a full vCPU
            description="fanflow: computes one case with a full vCPU and reports its completion")
        workflow = ComputeWorkflow(self, "ComputeWorkflow", bus=routing.bus, results_table=results,
                                   compute_seconds=seconds)
        queue = ComputeQueue(self, "ComputeQueue", bus=routing.bus, results_table=results)
        compute_targets = ComputeBackends(self, "ComputeBackends", routing=routing,
                                         default=ComputeBackend.function(compute.function),
                                         count_failures_with=fan_in.queue)
        compute_targets.add("Large", compute_type=c.COMPUTE_TYPE_LAMBDA_LARGE,
                            target=ComputeBackend.function(compute_large.function))
        compute_targets.add("Workflow", compute_type=c.COMPUTE_TYPE_WORKFLOW,
                            target=ComputeBackend.workflow(workflow.state_machine))
        compute_targets.add("Queue", compute_type=c.COMPUTE_TYPE_QUEUE, target=ComputeBackend.queue(queue.queue))
        # The functions whose COMPUTE_SECONDS `--compute-seconds` sets.
        compute_functions = [compute.function, compute_large.function, workflow.step_function]

        # Compute cannot take the orchestration's concurrency: a ceiling on each compute function,
        # a floor under each orchestration function.
        for function in compute_functions:
            concurrency.cap_compute(function)
        concurrency.reserve_orchestration(fan_out.prepare_function)
        concurrency.reserve_orchestration(fan_out.lifecycle_function)
        concurrency.reserve_orchestration(fan_out.emit_function, at_least=fan_out_concurrency)
        concurrency.reserve_orchestration(fan_in.summary_function)
        # As many batches as the event source mapping runs at once, each one consumer and one CountBatch.
        concurrency.reserve_orchestration(fan_in.consumer_function, at_least=fan_in_concurrency)
        concurrency.reserve_orchestration(fan_in.count_function, at_least=fan_in_concurrency)

        monitoring = PipelineMonitoring(
            self, "Monitoring", fan_out=fan_out.state_machine, fan_in=fan_in.state_machine,
            alarm_topic=alarm_topic(self, email=alarm_email, topic_arn=alarm_topic_arn),
            trace_sampling_rate=trace_sampling_rate,
        )
        monitoring.add_workflow("ComputeWorkflow", workflow.state_machine,
                                description="its case was neither computed nor reported FAILED")
        for label, function, role in (
                ("Prepare", fan_out.prepare_function, FunctionRole.ORCHESTRATION_NO_ERRORS),
                ("Emit", fan_out.emit_function, FunctionRole.ORCHESTRATION),
                ("Lifecycle", fan_out.lifecycle_function, FunctionRole.ORCHESTRATION_NO_ERRORS),
                ("Summary", fan_in.summary_function, FunctionRole.ORCHESTRATION),
                ("FanInConsumer", fan_in.consumer_function, FunctionRole.ORCHESTRATION),
                ("CountBatch", fan_in.count_function, FunctionRole.ORCHESTRATION),
                ("Compute", compute.function, FunctionRole.COMPUTE),
                ("ComputeLarge", compute_large.function, FunctionRole.COMPUTE),
                ("WorkflowStep", workflow.step_function, FunctionRole.COMPUTE_STEP)):
            monitoring.add_function(label, function, role=role)
        monitoring.add_dead_letter_queue(
            "RuleTargets", routing.dead_letter_queue, feed=DeadLetterFeed.SENT,
            meaning="EventBridge could not deliver an event to its target; its request will not complete")
        monitoring.add_dead_letter_queue(
            "Completions", fan_in.dead_letter_queue, feed=DeadLetterFeed.REDRIVE,
            meaning="a completion could not be counted after its receives (or is not a completion); its request "
            "will time out unless it is counted again (fanflow dead-letters)")
        monitoring.add_dead_letter_queue(
            "WorkQueue", queue.dead_letter_queue, feed=DeadLetterFeed.REDRIVE,
            meaning="a queue case was given up after its receives; its request will time out")
        for rule in self.node.find_all():
            if isinstance(rule, events.Rule):
                monitoring.add_rule(rule.node.id, rule, routing.bus)

        self.store, self.routing, self.compute, self.fan_in, self.fan_out = store, routing, compute, fan_in, fan_out
        self.cancel = cancel
        self.compute_targets, self.compute_large = compute_targets, compute_large
        self.workflow, self.queue = workflow, queue
        self.monitoring = monitoring
        for name, value in {
            c.OUTPUT_PREPROCESS_ARN: fan_out.state_machine.state_machine_arn,
            c.OUTPUT_INCREMENT_ARN: fan_in.state_machine.state_machine_arn,
            c.OUTPUT_CANCEL_ARN: cancel.state_machine.state_machine_arn,
            c.OUTPUT_COMPLETION_QUEUE_URL: fan_in.queue.queue_url,
            c.OUTPUT_COMPLETION_DLQ_URL: fan_in.dead_letter_queue.queue_url,
            c.OUTPUT_RULE_DLQ_URL: routing.dead_letter_queue.queue_url,
            c.OUTPUT_FAN_IN_CONSUMER: fan_in.consumer_function.function_name,
            c.OUTPUT_COUNTER_TABLE: store.counter_table.table_name,
            c.OUTPUT_RESULTS_TABLE: store.results_table.table_name,
            c.OUTPUT_BUS_NAME: routing.bus.event_bus_name,
            c.OUTPUT_ARTIFACTS_BUCKET: store.artifacts_bucket.bucket_name,
            c.OUTPUT_COMPUTE_FUNCTION: compute.function.function_name,
            c.OUTPUT_SUMMARY_FUNCTION: fan_in.summary_function.function_name,
            c.OUTPUT_COMPUTE_FUNCTIONS: Fn.join(",", [function.function_name for function in compute_functions]),
            c.OUTPUT_WORK_QUEUE_URL: queue.queue.queue_url,
            c.OUTPUT_WORKER_POLICY_ARN: queue.worker_policy.managed_policy_arn,
        }.items():
            CfnOutput(self, name, value=value)
