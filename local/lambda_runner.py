"""Runs Lambda functions in-process from their deployed code: each function gets its own
"container" (the asset's package imported under a private name, with the function's
environment at cold start), a real context object, and a concurrency limit."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaFunction

# Handlers read their configuration from os.environ once, at import: imports of different
# functions are serialised so that each sees its own variables.
_ENVIRON_LOCK = threading.RLock()

# A container per (function ARN, code digest, environment as sorted (name, value) pairs).
ContainerKey = tuple[str, str, tuple[tuple[str, str], ...]]


class LambdaContext:
    """The context object the Lambda runtime passes to a handler."""

    def __init__(self, fn: LambdaFunction) -> None:
        self.function_name = fn.function_name
        self.function_version = str(fn.version)
        self.invoked_function_arn = fn.function_arn
        self.memory_limit_in_mb = int(fn.memory_size)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{fn.function_name}"
        self.log_stream_name = f"embedded/{self.aws_request_id}"
        self._deadline = time.monotonic() + float(fn.timeout)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Container:
    handler: Callable[[Any, Any], Any]
    module: ModuleType


@dataclass
class InvocationStats:
    """Handler runs, by function name and by (function name, requestId). A run counts from
    its start: a request's final status, written by its Summary, is visible before that
    Summary returns."""

    by_function: Counter[str] = field(default_factory=Counter)
    by_request: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, function_name: str, event: Any, error: str | None) -> None:
        self.started(function_name, event)
        self.finished(function_name, error)

    def started(self, function_name: str, event: Any) -> None:
        request_id = _request_id(event)
        with self.lock:
            self.by_function[function_name] += 1
            if request_id is not None:
                self.by_request[(function_name, request_id)] += 1

    def finished(self, function_name: str, error: str | None) -> None:
        if error:
            with self.lock:
                self.errors.append((function_name, error))

    def count(self, function_name: str, request_id: str | None = None) -> int:
        with self.lock:
            if request_id is None:
                return self.by_function[function_name]
            return self.by_request[(function_name, request_id)]


def _request_id(event: Any) -> str | None:
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError:
            return None
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("requestId"), str):
        return event["requestId"]
    detail = event.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("requestId"), str):
        return detail["requestId"]
    return None


class LambdaRunner:
    """Invokes moto's Lambda functions in this process."""

    def __init__(self, *, concurrency: int = 1000, code_root: Path | None = None,
                 log_file: Path | None = None) -> None:
        self._log_file = log_file
        self._code_root = code_root or Path(tempfile.mkdtemp(prefix="fanflow-lambda-code-"))
        self._containers: dict[ContainerKey, Container] = {}
        self._containers_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self.concurrency = concurrency
        # Module names are private to this runner: a new runner cold-starts afresh.
        self._instance = uuid.uuid4().hex[:8]
        self.stats = InvocationStats()
        # Called with (function, handler module) once per container, before first use.
        self.cold_start_hooks: list[Callable[[LambdaFunction, ModuleType], None]] = []
        # AWS's limits (local/aws_limits/enforce.AwsLimits), when the emulator runs under them:
        # an invocation first waits for an execution of its function.
        self.limits: Any = None

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        """moto's `_invoke_lambda` contract: (payload as JSON, errored, log text)."""
        if event is None:
            event = {}
        elif isinstance(event, (str, bytes)):
            event = json.loads(event)  # moto passes an empty payload as the string "{}"
        limits = self.limits
        if limits is None:
            return self._run(fn, event)
        cold, held = limits.enter(fn.function_name)
        try:
            began = limits.clock()
            self._container(fn)  # a first invocation imports the handler: part of its start
            limits.started(cold, since=began)
            return self._run(fn, event)
        finally:
            if held:
                limits.release(fn.function_name)

    def _run(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        with self._slots:
            error = None
            self.stats.started(fn.function_name, event)
            try:
                container = self._container(fn)
                result = container.handler(event, LambdaContext(fn))
                payload, errored, logs = json.dumps(result), False, ""
            except Exception as exc:  # reported to the caller as a function error
                error = f"{type(exc).__name__}: {exc}"
                payload = json.dumps({
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exc().splitlines(),
                })
                errored, logs = True, traceback.format_exc()
            self.stats.finished(fn.function_name, error)
            return payload, errored, logs

    def _container(self, fn: LambdaFunction) -> Container:
        env = {k: str(v) for k, v in (fn.environment_vars or {}).items()}
        if self._log_file is not None:
            env["FANFLOW_LOG_FILE"] = str(self._log_file)
        # Looked up on every invocation: a plain tuple, not a digest of the environment.
        key = (fn.function_arn, fn.code_sha_256, tuple(sorted(env.items())))
        with self._containers_lock:
            container = self._containers.get(key)
            if container is None:
                container = self._cold_start(fn, env, key)
                self._containers[key] = container
            return container

    def _cold_start(self, fn: LambdaFunction, env: dict[str, str], key: ContainerKey) -> Container:
        code_dir = self._code_root / hashlib.sha256(fn.code_sha_256.encode()).hexdigest()[:20]
        if not code_dir.is_dir():
            zipfile.ZipFile(io.BytesIO(fn.code_bytes)).extractall(code_dir)
        module_path, _, function_name = str(fn.handler).rpartition(".")
        package, _, module_name = module_path.rpartition(".")
        if not package:
            raise ImportError(f"handler {fn.handler!r}: expected package.module.function")
        alias = f"_fanflow_fn_{self._instance}_" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        package_dir = code_dir / package.replace(".", "/")
        spec = importlib.util.spec_from_file_location(
            alias, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load package {package!r} from {code_dir}")
        with _ENVIRON_LOCK:
            saved = {name: os.environ.get(name) for name in env}
            os.environ.update(env)
            try:
                package_module = importlib.util.module_from_spec(spec)
                sys.modules[alias] = package_module
                spec.loader.exec_module(package_module)
                module = importlib.import_module(f"{alias}.{module_name}")
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        for hook in self.cold_start_hooks:
            hook(fn, module)
        return Container(handler=getattr(module, function_name), module=module)
