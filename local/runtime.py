"""The embedded emulator: moto in this process, fanflow's stack deployed into it through
CloudFormation, rule targets delivered asynchronously and Lambda handlers run in-process."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import gc
import json
import logging
import os
import threading
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws
from moto.utilities.arns import parse_arn

from lambda_fns import constants as c

from . import moto_patches
from .assembly import cache_root, ensure_assembly
from .aws_limits.enforce import AwsLimits
from .delivery_pool import DeliveryPool
from .deploy import apply_event_invoke_configs, create_stack, publish_assets
from .event_sources import SqsEventSource
from .faults import FaultPlan, InjectedFailure, attempt_of
from .lambda_runner import LambdaRunner
from .log_files import rotate
from .moto_patches.asl_engine import executions_inline
from .moto_patches.delivery import send_to_queue, target_input

LOG = logging.getLogger("fanflow.embedded")
ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
DELIVERY_ATTEMPTS = 3
# A finished execution's history (and evaluation state) is two thirds of what a case costs
# in memory; past this many succeeded executions per state machine, the oldest drop theirs.
DEFAULT_KEPT_HISTORIES = 1000
# Collections of the middle generation between two looks at a full collection (Python's is 10).
FULL_COLLECTION_THRESHOLD = 100


UNMODELLED_RESOURCES = ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::Lambda::EventInvokeConfig",
                        "AWS::XRay::SamplingRule", "AWS::CloudWatch::Alarm", "AWS::SNS::TopicPolicy")


class _UnmodelledResourceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.msg == "No Moto CloudFormation support for %s" and args
                    and args[0] in UNMODELLED_RESOURCES)


@dataclass
class EngineStats:
    """What the engine saw, per request: item writes per table (counter-row writes, on the
    counter table) and executions started per state machine (fan-in executions)."""

    writes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table name, requestId)
    executions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (state machine name, requestId)
    # completions handed to the fan-in workflow, by (requestId, caseId): more than one is a duplicate
    completions: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, table: str, item: dict[str, Any]) -> None:
        value = item.get(c.ATTR_REQUEST_ID)
        request_id = value.get("S") if isinstance(value, dict) else None
        if isinstance(request_id, str):
            with self.lock:
                self.writes[(table, request_id)] += 1

    def execution_started(self, state_machine_arn: str, execution_input: str) -> None:
        name = state_machine_arn.rsplit(":", 1)[-1]
        try:
            data = json.loads(execution_input)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        completions = [(item.get("requestId"), item.get("caseId")) for item in data.get("completions") or []
                       if isinstance(item, dict)]
        detail = data.get("detail")
        request_id = (detail if isinstance(detail, dict) else data).get("requestId")
        request_ids = {rid for rid, _ in completions} if completions else {request_id}
        with self.lock:
            for rid in request_ids:
                if isinstance(rid, str):
                    self.executions[(name, rid)] += 1
            for rid, case_id in completions:
                if isinstance(rid, str) and isinstance(case_id, str):
                    self.completions[(rid, case_id)] += 1

    def fan_in_completions(self, request_id: str) -> Counter[str]:
        """How many times each of a request's cases reached the fan-in workflow, by caseId."""
        with self.lock:
            return Counter({case: n for (rid, case), n in self.completions.items() if rid == request_id})


@dataclass
class Delivery:
    """What became of events the emulated EventBridge delivered."""

    delivered: int = 0
    dead_lettered: int = 0
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# The requestId and attempt of the event the compute handler in this thread runs for, as
# fault injection's `work` needs them (EmbeddedEmulator._inject_compute_failures).
_COMPUTING: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar("fanflow_computing",
                                                                            default=("", 1))


def _computed_event(event: Any) -> tuple[str, int]:
    """The requestId and attempt a compute handler's input is for: a whole fan-out event (its
    detail), or the case reference a compute workflow passes its step."""
    detail = event.get("detail") if isinstance(event, dict) else None
    found = detail if isinstance(detail, dict) else event if isinstance(event, dict) else {}
    request_id = found.get("requestId")
    return (request_id if isinstance(request_id, str) else "", attempt_of(found))


class EmbeddedEmulator:
    """Use as a context manager: on entry the stack is deployed and `outputs` is set."""

    def __init__(self, *, region: str = DEFAULT_REGION, lambda_concurrency: int = 1000,
                 compute_seconds: float | None = c.COMPUTE_SECONDS_EMBEDDED,
                 faults: FaultPlan | None = None, with_seed_variant: bool = False,
                 kept_histories: int | None = DEFAULT_KEPT_HISTORIES, aws_limits: str | None = None,
                 time_scale: float = 1.0) -> None:
        self.region = region
        # Under one Region's published limits, in real time or `time_scale` times slower
        # (local/aws_limits/enforce.py); None: none.
        self.limits = (AwsLimits(aws_limits, lambda_concurrency=lambda_concurrency, time_scale=time_scale)
                       if aws_limits else None)
        if time_scale != 1 and self.limits is None:
            raise ValueError("a time scale applies to a run under AWS's limits only")
        # Succeeded executions per state machine that keep their history; None keeps all.
        self.kept_histories = kept_histories
        self.faults = faults or FaultPlan()
        self.with_seed_variant = with_seed_variant
        self.stack_outputs: dict[str, dict[str, str]] = {}
        # PutEvents calls seen by the emulated EventBridge, by (bus name, source of the first entry).
        self.put_events_calls: Counter[tuple[str, str]] = Counter()
        self.log_file = cache_root() / "logs" / "lambda.log"
        rotate(self.log_file)  # appended to: other emulators (an endpoint, another run) may write there too
        self.runner = LambdaRunner(concurrency=lambda_concurrency, log_file=self.log_file)
        self.runner.cold_start_hooks.append(self._inject_compute_failures)
        self.runner.limits = self.limits
        self.compute_seconds = compute_seconds
        self.delivery = Delivery()
        self.engine = EngineStats()
        self.event_sources: list[SqsEventSource] = []
        self._pool: DeliveryPool | None = None
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._saved_env: dict[str, str | None] = {}
        self.outputs: dict[str, str] = {}
        self.session: boto3.session.Session | None = None
        self._froze_heap = False
        self._gc_thresholds: tuple[int, int, int] = gc.get_threshold()

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> EmbeddedEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        assembly = ensure_assembly(context={"seedVariant": "true"} if self.with_seed_variant else None)
        # moto's CloudFormation has no model for these resources and says so for each: the
        # policies only restrict access, which the emulator does not enforce, and the
        # invoke configs are applied by apply_event_invoke_configs.
        warnings.filterwarnings("ignore", message=f"Tried to parse ({'|'.join(UNMODELLED_RESOURCES)})")
        if not any(isinstance(f, _UnmodelledResourceFilter) for f in logging.getLogger("moto").filters):
            logging.getLogger("moto").addFilter(_UnmodelledResourceFilter())
        # The ASL engine logs each failed state with its whole parse tree; the failure is
        # in the execution's history and status already.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        for name, value in {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
                            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            self._saved_env[name] = os.environ.pop(name, None)
        moto_patches.install(
            invoke=self.runner.invoke, deliver=self._deliver, on_put_events=self._count_put_events,
            kept_histories=self.kept_histories,
            hooks=moto_patches.EngineHooks(
                invoke_async=self._invoke_event, on_event_source_mapping=self._poll_event_source,
                on_execution=self.engine.execution_started, on_dynamodb_write=self.engine.write,
                transaction_fault=self._transaction_fault if self.faults.conflict_rate or self.limits else None,
                on_state_entered=self.limits.state_entered if self.limits else None,
                before_api_call=self.limits.before_api_call if self.limits else None,
                after_api_call=self.limits.after_api_call if self.limits else None,
            ),
        )
        self._mock.start()
        try:
            # As many deliveries at once as Lambda allows; threads only as they help, or at once
            # while cases sleep a simulated compute time.
            self._pool = DeliveryPool(max(8, self.runner.concurrency), name="fanflow-eventbridge",
                                      eager=lambda: bool(self.compute_seconds))
            self.session = boto3.session.Session(region_name=self.region)
            stacks = [c.STACK_NAME] + ([c.SEED_VARIANT_STACK_NAME] if self.with_seed_variant else [])
            for stack in stacks:
                publish_assets(assembly, self.client("s3"), account=ACCOUNT, region=self.region, stack_name=stack)
                self.stack_outputs[stack] = create_stack(assembly, self.client("cloudformation"), stack_name=stack)
            self.outputs = self.stack_outputs[c.STACK_NAME]
            apply_event_invoke_configs(assembly, self.client("cloudformation"), self.client("lambda"),
                                       account=ACCOUNT, region=self.region)
            if self.compute_seconds is not None:
                self.set_compute_seconds(self.compute_seconds)
            if self.limits is not None:
                self._attach_limits(self.limits)
        except BaseException:
            self.stop()
            raise
        self._freeze_deployed_heap()

    def _freeze_deployed_heap(self) -> None:
        """What is alive once the stack is deployed (moto's and botocore's models, the stack's
        resources, the modules) lives as long as the emulator, and every full garbage collection
        walked all of it during a request (about 0.3 s each; 0.5-0.8 s of the 4.5-5.5 s of CPU
        of a 1,000-case request). It is collected once and frozen: later collections walk only
        what requests make. `stop` unfreezes it.

        And a full collection is considered after every 100 collections of the middle
        generation instead of 10 (it still runs only when the objects that survived to the
        oldest generation grew by a quarter since the last one): a request's heap grows by
        more than a quarter many times over, and at 10,000 cases 23 full collections of it
        cost 5.3 s of CPU; with 100, 6 cost 1.2 s, and the peak RSS stayed below 450 MB.
        `stop` restores the thresholds it found."""
        if not self._froze_heap:
            gc.collect()
            gc.freeze()
            self._froze_heap = True
            self._gc_thresholds = gc.get_threshold()
            young, middle, _ = self._gc_thresholds
            gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)

    def _thaw_heap(self) -> None:
        """Undo `_freeze_deployed_heap`."""
        if self._froze_heap:
            gc.unfreeze()
            gc.set_threshold(*self._gc_thresholds)
            self._froze_heap = False

    def _attach_limits(self, limits: AwsLimits) -> None:
        """Tell the limits what was deployed: each function's reserved concurrency, which state
        machines are Express, each table's partition key."""
        from moto.awslambda.utils import get_backend
        from moto.dynamodb.models import dynamodb_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        functions = get_backend(ACCOUNT, self.region).list_functions()
        reserved = {fn.function_name: int(fn.reserved_concurrency) for fn in functions
                    if fn.reserved_concurrency is not None}
        machines = stepfunctions_parser_backends[ACCOUNT][self.region]
        tables = dynamodb_backends[ACCOUNT][self.region]

        def is_express(arn: str) -> bool:
            return str(machines.describe_state_machine(arn).type).upper() == "EXPRESS"

        def partition_key(table: str) -> str | None:
            found = tables.tables.get(table)
            return None if found is None else str(found.hash_key_attr)

        limits.attach(reserved=reserved, is_express=is_express, partition_key=partition_key)

    def stop(self) -> None:
        if self.limits is not None:
            self.limits.stop()
        self._thaw_heap()
        for source in self.event_sources:
            source.stop()
        self.event_sources.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        with contextlib.suppress(RuntimeError):  # already stopped
            self._mock.stop()
        moto_patches.uninstall()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def client(self, service: str) -> Any:
        assert self.session is not None, "the emulator is not started"
        return self.session.client(service)

    def set_compute_seconds(self, seconds: float, *, stack: str = c.STACK_NAME) -> None:
        """Set the compute functions' simulated work time, as `aws lambda
        update-function-configuration` would on any target (and the embedded queue workers')."""
        lam = self.client("lambda")
        outputs = self.stack_outputs[stack]
        for name in outputs.get(c.OUTPUT_COMPUTE_FUNCTIONS, outputs[c.OUTPUT_COMPUTE_FUNCTION]).split(","):
            env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
            # under a time scale, the work takes as much longer as everything else
            env[c.ENV_COMPUTE_SECONDS] = str(seconds * (self.limits.time_scale if self.limits else 1.0))
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        if stack == c.STACK_NAME:
            self.compute_seconds = seconds

    def _fan_in_mapping(self) -> dict[str, Any]:
        lam = self.client("lambda")
        [mapping] = lam.list_event_source_mappings(FunctionName=self.outputs[c.OUTPUT_FAN_IN_CONSUMER])[
            "EventSourceMappings"]
        return dict(mapping)

    def fan_in_batching(self) -> dict[str, int]:
        """How the fan-in buffer is read now: batch_size and window_seconds."""
        mapping = self._fan_in_mapping()
        return {"batch_size": int(mapping["BatchSize"]),
                "window_seconds": int(mapping.get("MaximumBatchingWindowInSeconds", 0))}

    def set_fan_in_batching(self, *, batch_size: int | None = None, window_seconds: int | None = None) -> None:
        """Change how the fan-in buffer is read (UpdateEventSourceMapping, as on any target)."""
        from infra.fan_in_settings import OPTION_NAMES, check_batching

        lam = self.client("lambda")
        mapping = self._fan_in_mapping()
        size = mapping["BatchSize"] if batch_size is None else batch_size
        window = mapping.get("MaximumBatchingWindowInSeconds", 0) if window_seconds is None else window_seconds
        check_batching(batch_size=size, batch_window_seconds=window, max_concurrency=c.FAN_IN_MAX_CONCURRENCY,
                       names=OPTION_NAMES)
        lam.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=size, MaximumBatchingWindowInSeconds=window)

    def summary_invocations(self, request_id: str) -> int:
        return self.runner.stats.count(self.outputs[c.OUTPUT_SUMMARY_FUNCTION], request_id)

    def fan_in_stats(self, request_id: str, *, stack: str = c.STACK_NAME) -> dict[str, int]:
        """What the engine saw of a request's fan-in: writes to its counter row, and executions
        of the fan-in workflow that counted any of its cases."""
        outputs = self.stack_outputs[stack]
        increment = outputs[c.OUTPUT_INCREMENT_ARN].rsplit(":", 1)[-1]
        with self.engine.lock:
            return {"counterWrites": self.engine.writes[(outputs[c.OUTPUT_COUNTER_TABLE], request_id)],
                    "fanInExecutions": self.engine.executions[(increment, request_id)]}

    def _poll_event_source(self, mapping: Any) -> None:
        """An SQS event source mapping was created: poll its queue as Lambda does."""
        self.event_sources.append(SqsEventSource(mapping, invoke=self.runner.invoke,
                                                 time_scale=self.limits.time_scale if self.limits else 1.0))

    def _invoke_event(self, fn: Any, payload: Any) -> None:
        """An asynchronous (Event) invocation: queued, then run with Lambda's retries."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("the emulator is stopped: no invocations")
        if self.limits is not None:  # it waits in the function's queue for concurrency
            self.limits.async_queue(fn.function_name, pool.submit).submit(
                lambda: self._invoke_async(fn.function_arn, payload))
            return
        pool.submit(self._invoke_async, fn.function_arn, payload)

    def _transaction_fault(self, items: list[tuple[str, dict[str, Any]]]) -> int | None:
        """--conflict-rate: cancel a transaction that touches a counter row, on that row; under
        AWS's limits, one that overlaps another on an item."""
        if self.faults.conflict_rate:
            counter_table = self.outputs.get(c.OUTPUT_COUNTER_TABLE)
            for index, (table, key) in enumerate(items):
                value = key.get(c.ATTR_REQUEST_ID)
                if table == counter_table and isinstance(value, dict) and self.faults.conflict(str(value.get("S"))):
                    return index
        return self.limits.transaction_conflict(items) if self.limits is not None else None

    def _count_put_events(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            bus = str(entries[0].get("EventBusName") or "default").rsplit("/", 1)[-1]
            with self.delivery.lock:
                self.put_events_calls[(bus, str(entries[0].get("Source")))] += 1

    # -- fault injection -----------------------------------------------------------------
    def _inject_compute_failures(self, fn: Any, module: Any) -> None:
        """Make the compute functions' `work` raise for the cases the fault plan picks, on the
        attempts it covers. `work` sees only the case, so the handler is wrapped too: it notes
        the requestId and attempt of the event it runs for (_COMPUTING), which `work` reads in
        the same thread.

        Covered: every function the stack names as computing cases (OUTPUT_COMPUTE_FUNCTIONS):
        the Compute functions of the Lambda targets, which get the whole fan-out event
        (`detail.attempt`), and the compute workflow's step, which gets the case reference the
        workflow passes on (its `attempt`, when the workflow passes one; else attempt 1). Not
        covered: the queue target, whose cases `fanflow worker` computes outside the Lambda
        runner. Lambda's retries of an event keep its attempt, so a case chosen to fail on an
        attempt fails on each try of it."""
        names = self.outputs.get(c.OUTPUT_COMPUTE_FUNCTIONS, self.outputs.get(c.OUTPUT_COMPUTE_FUNCTION, ""))
        if not self.faults.failure_rate or fn.function_name not in names.split(",") or not hasattr(module, "work"):
            return
        handler_name = str(fn.handler).rpartition(".")[2]
        handler, work = getattr(module, handler_name), module.work
        faults = self.faults

        def handler_noting_attempt(event: Any, context: Any) -> Any:
            token = _COMPUTING.set(_computed_event(event))
            try:
                return handler(event, context)
            finally:
                _COMPUTING.reset(token)

        def work_with_faults(request: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            request_id, attempt = _COMPUTING.get()
            if faults.fail(request_id, str(request.get(c.ATTR_CASE_ID)), attempt):
                raise InjectedFailure("injected failure (--failure-rate)")
            return work(request, *args, **kwargs)

        setattr(module, handler_name, handler_noting_attempt)
        module.work = work_with_faults

    # -- EventBridge target delivery ----------------------------------------------------
    def _deliver(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        copies = 1
        detail = event.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        request = detail.get("request")
        request_id = detail.get("requestId")
        case_id = request.get(c.ATTR_CASE_ID) if isinstance(request, dict) else None
        if self.faults.active and isinstance(request_id, str) and isinstance(case_id, str):
            attempt = attempt_of(detail)  # a fan-out event's, or the one its completion echoes
            if event.get("source") == c.COMPUTE_SOURCE and self.faults.drop(request_id, case_id, attempt):
                return  # a lost completion event
            if self.faults.duplicate(str(event.get("source")), request_id, case_id, attempt):
                copies = 2  # EventBridge delivers at least once
        pool = self._pool
        if pool is None:
            raise RuntimeError("the emulator is stopped: no deliveries")
        for _ in range(copies):
            if self.limits is not None and self.limits.scheduler is not None:
                # the target's invocation rate, EventBridge's delay, a state machine's start
                self.limits.scheduler.later(self.limits.delivery_delay(str(target["Arn"])),
                                            lambda: pool.submit(self._deliver_now, target, event))
            else:
                pool.submit(self._deliver_now, target, event)

    def _deliver_now(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = parse_arn(target["Arn"])
        try:
            payload = target_input(target, event)
        except Exception as exc:  # an input EventBridge cannot render goes to the DLQ
            self._dead_letter(target, event, f"input transformation failed: {exc}")
            return
        last_error = ""
        for _ in range(DELIVERY_ATTEMPTS):
            try:
                if arn.service == "lambda" and self.limits is not None:
                    self._invoke_event(self._function(target["Arn"]), payload)
                elif arn.service == "lambda":
                    self._invoke_async(target["Arn"], payload)
                elif arn.service == "sqs":
                    self._send_message(target["Arn"], payload)
                else:
                    self._start_execution(target["Arn"], payload)
                with self.delivery.lock:
                    self.delivery.delivered += 1
                return
            except Exception as exc:  # retried, then dead-lettered, as EventBridge does
                last_error = f"{type(exc).__name__}: {exc}"
        self._dead_letter(target, payload, last_error)

    @staticmethod
    def _function(function_arn: str) -> Any:
        from moto.awslambda.utils import get_backend

        arn = parse_arn(function_arn)
        return get_backend(arn.account, arn.region).get_function(function_arn)

    def _invoke_async(self, function_arn: str, payload: Any) -> None:
        fn = self._function(function_arn)
        config = fn.event_invoke_config[0].config if fn.event_invoke_config else {}
        attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
        for _ in range(attempts):
            response, errored, logs = self.runner.invoke(fn, payload)
            if not errored:
                return
        with self.delivery.lock:
            self.delivery.failed.append(f"{fn.function_name}: {logs.splitlines()[-1] if logs else ''}")
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination and parse_arn(destination).service == "events":
            try:
                self._send_failure_record(fn, payload, json.loads(response), attempts, destination)
            except Exception:
                LOG.exception("could not send the failure record of %s to %s", fn.function_name, destination)
        else:
            LOG.warning("asynchronous invocation of %s failed after %d attempts", fn.function_name, attempts)

    def _send_failure_record(self, fn: Any, payload: Any, error: dict[str, Any], attempts: int,
                             bus_arn: str) -> None:
        """What Lambda sends to an EventBridge on-failure destination (Lambda developer guide,
        "Capturing records of Lambda asynchronous invocations"): the event names the function by
        its qualified ARN, in `resources` and in `requestContext.functionArn`."""
        qualified = f"{fn.function_arn}:$LATEST"
        detail = {
            "version": "1.0",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": qualified,
                               "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": error.get("errorMessage", ""), "errorType": error.get("errorType", "")},
        }
        self.client("events").put_events(Entries=[{
            "Source": c.LAMBDA_DESTINATION_SOURCE, "DetailType": c.LAMBDA_FAILURE_DETAIL_TYPE,
            "Resources": [qualified], "Detail": json.dumps(detail), "EventBusName": bus_arn,
        }])

    @staticmethod
    def _send_message(queue_arn: str, payload: Any) -> None:
        """An SQS rule target: the message body is the event, or the target's input, as JSON
        (a string input is sent as it is)."""
        send_to_queue(queue_arn, payload if isinstance(payload, str) else json.dumps(payload))

    def _start_execution(self, state_machine_arn: str, payload: Any) -> None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        arn = parse_arn(state_machine_arn)
        backend = stepfunctions_parser_backends[arn.account][arn.region]
        # As EventBridge, each delivery starts one execution; here it also runs it, so that
        # executions run as many at a time as there are delivery threads (adaptation 15).
        with executions_inline():
            backend.start_execution(state_machine_arn, name=str(uuid.uuid4()), execution_input=json.dumps(payload))

    def _dead_letter(self, target: dict[str, Any], payload: Any, error: str) -> None:
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        with self.delivery.lock:
            self.delivery.failed.append(error)
            if dlq:
                self.delivery.dead_lettered += 1
        if dlq:
            from moto.sqs.models import sqs_backends

            arn = parse_arn(dlq)
            sqs_backends[arn.account][arn.region].send_message(
                arn.resource_id, json.dumps(payload), message_attributes={}, delay_seconds=0
            )
