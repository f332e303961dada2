"""Structured logs, metrics and traces for the handlers (Powertools for AWS Lambda), set up
once per container at cold start. `Telemetry.instrument` wraps a handler so that every log
line of an invocation names the request (and case) it is about, its metrics leave as one
CloudWatch EMF line when it ends, and X-Ray shows it annotated with the requestId."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from . import constants as c

__all__ = ["MetricUnit", "Telemetry", "log", "request_keys"]

Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])


def request_keys(event: Any) -> dict[str, str]:
    """The requestId and caseId an event is about, in the two shapes fanflow's functions
    receive: a direct payload (`{"requestId", ...}`) or an EventBridge event whose detail is
    `{"requestId", "request": {"caseId", ...}}`. Only these identifiers are logged; case
    payloads never are."""
    if not isinstance(event, Mapping):
        return {}
    detail = event.get("detail")
    source = detail if isinstance(detail, Mapping) else event
    keys: dict[str, str] = {}
    request_id = source.get("requestId")
    if isinstance(request_id, str) and request_id:
        keys["requestId"] = request_id[: c.MAX_REQUEST_ID_LENGTH]
    case = source.get("request")
    case_id = case.get(c.ATTR_CASE_ID) if isinstance(case, Mapping) else source.get(c.ATTR_CASE_ID)
    if isinstance(case_id, str) and case_id:
        keys["caseId"] = case_id[: c.MAX_CASE_ID_LENGTH]
    return keys


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """One JSON line: the message, the invocation's bound keys and these fields."""
    logger.log(level, message, extra=fields, stacklevel=2)


# Set while an instrumented handler runs in this context (thread).
_IN_INVOCATION: ContextVar[bool] = ContextVar("fanflow_in_invocation", default=False)


class _InvocationFileHandler(logging.FileHandler):
    """The embedded runtime's log file: lines logged during an invocation are written through
    when it ends, not one flush per line (which was a tenth of a computed case's cost)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.stream if self.stream is not None else self._open()
            stream.write(self.format(record) + self.terminator)
            if not _IN_INVOCATION.get():
                stream.flush()
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)


class Telemetry:
    """One function's logger, metrics and tracer.

    Logs are Powertools' JSON lines, written to stdout on Lambda (the function's log stream)
    or to FANFLOW_LOG_FILE, which the embedded runtime sets so that handler logs stay out of
    the CLI's output. Powertools' `Logger` configures one process-wide logger per service;
    the embedded runtime runs every function, several containers of each and many
    invocations at once in one process, so each container here owns a logger with
    Powertools' formatter, and per-invocation keys are bound with its thread-safe
    (context-local) API rather than `inject_lambda_context`, whose keys are shared.
    """

    def __init__(self, function: str, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.function = function
        log_file = env.get(c.ENV_LOG_FILE)
        self._handler: logging.StreamHandler[Any] = (
            _InvocationFileHandler(log_file) if log_file else logging.StreamHandler(sys.stdout)
        )
        self._formatter = LambdaPowertoolsFormatter(service=c.SERVICE_NAME, utc=True, use_rfc3339=True)
        self._handler.setFormatter(self._formatter)
        # The module name is unique per container in the embedded runtime (the package is
        # imported under a private alias), so containers do not share handlers.
        self.logger = logging.getLogger(f"{__name__}.{function}")
        for old in self.logger.handlers[:]:  # a re-import of the same module: start afresh
            self.logger.removeHandler(old)
            old.close()
        self.logger.addHandler(self._handler)
        self.logger.propagate = False
        self.logger.setLevel(env.get("LOG_LEVEL", "INFO"))
        # Tracing runs on Lambda only (Powertools disables it elsewhere: no X-Ray daemon).
        # Only botocore is patched, and responses are not captured: they carry case payloads.
        self.tracer = Tracer(service=c.SERVICE_NAME, patch_modules=["botocore"])
        self._metrics: ContextVar[EphemeralMetrics | None] = ContextVar(f"fanflow_metrics_{function}", default=None)
        self._cold_start = True
        self._cold_start_lock = threading.Lock()

    # -- per invocation -----------------------------------------------------------------
    def instrument(self, handler: Handler) -> Handler:
        """Wrap a Lambda handler: bind its keys, trace it, flush its metrics, log a crash."""

        @functools.wraps(handler)
        def annotated(event: Any, context: Any) -> Any:
            for key, value in request_keys(event).items():
                self.tracer.put_annotation(key, value)
            return handler(event, context)

        traced = self.tracer.capture_lambda_handler(annotated, capture_response=False)

        @functools.wraps(handler)
        def invoke(event: Any, context: Any) -> Any:
            previous = dict(self._formatter.thread_safe_get_current_keys())
            self._formatter.thread_safe_append_keys(**self._context_keys(context), **request_keys(event))
            metrics = EphemeralMetrics(namespace=c.METRICS_NAMESPACE, service=c.SERVICE_NAME)
            token = self._metrics.set(metrics)
            inside = _IN_INVOCATION.set(True)
            try:
                return traced(event, context)
            except Exception as exc:
                log(self.logger, logging.ERROR, "invocation failed", error=type(exc).__name__)
                raise
            finally:
                self._metrics.reset(token)
                self._flush(metrics)
                _IN_INVOCATION.reset(inside)
                self._handler.flush()  # once per invocation: its log lines and its metrics
                self._formatter.thread_safe_clear_keys()
                if previous:
                    self._formatter.thread_safe_append_keys(**previous)

        return invoke  # type: ignore[return-value]

    def case_settled(self, logger: logging.Logger, settled: Any) -> None:
        """What every compute target reports about one case (a casework.Settled): the metrics of a
        case computed now; a log line whatever became of it. A case skipped for its deadline counts
        as CasesExpired, never as work done."""
        if settled.skipped:
            if settled.skipped == c.CASE_EXPIRED:
                self.metric(c.METRIC_CASES_EXPIRED, MetricUnit.Count, 1)
            log(logger, logging.WARNING if settled.skipped == c.CASE_EXPIRED else logging.INFO,
                "case not computed", reason=settled.skipped)
            return
        outcome = settled.outcome
        if outcome is None:
            log(logger, logging.INFO, "case reported from its stored result", state=settled.state)
            return
        if outcome.error:
            log(logger, logging.WARNING, "case failed", error=outcome.error)
        self.metric(c.METRIC_CASES_COMPLETED, MetricUnit.Count, 1)
        self.metric(c.METRIC_CASES_FAILED, MetricUnit.Count, int(outcome.state == c.CASE_FAILED))
        self.metric(c.METRIC_COMPUTE_DURATION, MetricUnit.Milliseconds, outcome.duration_ms)
        log(logger, logging.INFO, "case completed", state=outcome.state, durationMs=outcome.duration_ms)

    def metric(self, name: str, unit: MetricUnit, value: float) -> None:
        """Record a metric of the current invocation (flushed when it ends)."""
        self._current().add_metric(name=name, unit=unit, value=value)

    def dimension(self, name: str, value: str) -> None:
        """Add a dimension to every metric of the current invocation."""
        self._current().add_dimension(name=name, value=value)

    def _current(self) -> EphemeralMetrics:
        metrics = self._metrics.get()
        if metrics is None:
            raise RuntimeError("metrics are recorded inside an instrumented handler only")
        return metrics

    def _context_keys(self, context: Any) -> dict[str, Any]:
        with self._cold_start_lock:
            cold_start, self._cold_start = self._cold_start, False
        # The names Powertools' inject_lambda_context uses, so log queries carry over.
        return {
            "cold_start": cold_start,
            "function_name": getattr(context, "function_name", None),
            "function_memory_size": getattr(context, "memory_limit_in_mb", None),
            "function_arn": getattr(context, "invoked_function_arn", None),
            "function_request_id": getattr(context, "aws_request_id", None),
        }

    def _flush(self, metrics: EphemeralMetrics) -> None:
        """The invocation's metrics as one EMF line beside its logs (CloudWatch extracts them
        from the log stream); nothing when it recorded none."""
        if not metrics.metric_set:
            return
        line = self._formatter.serialize(metrics.serialize_metric_set())  # type: ignore[arg-type]
        self._handler.acquire()
        try:
            self._handler.stream.write(line + "\n")
        finally:
            self._handler.release()
