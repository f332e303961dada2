"""Lambda invocations: run in-process by the runtime, not in Docker, and `Event` invocations
queued to the runtime and answered at once.

Replaces, in moto 5.2.5: moto.awslambda.models.LambdaFunction._invoke_lambda (2) and
LambdaFunction.invoke for InvocationType Event (18).
Tests: tests/unit/test_patches_lambda_invocations.py.

2. Lambda code runs only in Docker. Invocations are handed to the runtime's `invoke`
   callback, which runs the handler from the deployed asset in-process.
18. Lambda `Event` invocations (Invoke with InvocationType Event; Step Functions' lambda:invoke
   with it) run before moto answers. With `EngineHooks.invoke_async`, they are queued to the
   runtime and answered 202 at once, as Lambda does; the runtime retries and dead-letters them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaFunction

from .patching import Patch

Invoke = Callable[[LambdaFunction, Any], "tuple[str, bool, str]"]


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def async_event_invocations(patch: Patch,
                             invoke_async: Callable[[LambdaFunction, Any], None] | None) -> None:
    """moto runs an `Event` invocation (Invoke with InvocationType Event, and InvokeAsync)
    before it answers. On AWS, Lambda queues the event and answers 202 at once; the function
    runs later, is retried on error, and its failure goes to its on-failure destination
    (Lambda developer guide, "Invoking a Lambda function asynchronously"). The runtime's
    `invoke_async` does that part (adaptation 18)."""
    if invoke_async is None:
        return
    original = LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        if _header(request_headers, "x-amz-invocation-type") != "Event":
            return original(self, body, request_headers, response_headers)
        event = json.loads(body) if body else {}
        invoke_async(self, event)
        return b""  # moto answers 202 with no payload, as Lambda does for Event

    patch(LambdaFunction, "invoke", invoke)


def invoke_in_process(patch: Patch, invoke: Invoke) -> None:
    """Adaptation 2: LambdaFunction._invoke_lambda, which runs the code in Docker, hands the
    invocation to the runtime's `invoke`."""
    patch(LambdaFunction, "_invoke_lambda", lambda self, event=None: invoke(self, event))
