"""Where the embedded engine lets AWS's limits in (`--aws-limits REGION`, local/aws_limits/).
moto answers every call as fast as the CPU allows and never throttles; these hooks give the
runtime the two places its limits act on that it does not own: every state a Step Functions
execution enters, and every API call a botocore client makes (the handlers' and the ASL
engine's SDK integrations alike).

Replaces, in moto 5.2.5: moto.stepfunctions.parser.asl.component.state.state.CommonStateField
._eval_body (wrapped: the hook runs before the state's StateEntered event); adds a
`before-parameter-build` and an `after-call` handler to botocore.handlers.BUILTIN_HANDLERS
and to boto3's default session (27).
Tests: tests/unit/test_patches_limits.py.

27. Limits: Step Functions bills and throttles Standard workflows by state transition, and each
   transition takes time (service-quotas.html: the state-transition token bucket); moto's ASL
   engine runs states back to back. `on_state_entered(standard)` is called as each state is
   entered, in the execution's thread, before its StateEntered event, with whether the
   execution is a Standard one, so that the runtime can take a token and wait. And every API
   call takes its time on AWS and counts against its quota: `before_api_call(service,
   operation, params, context)` runs before the call's parameters are serialised (it may wait
   for a token, or raise the call's throttling error), `after_api_call(service, operation,
   context)` once its response is parsed (it may wait for the rest of the call's latency);
   `context` is botocore's per-call dict, the same object in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .patching import Patch

LIMITS_HANDLER_ID = "fanflow-aws-limits"

StateEntered = Callable[[bool], None]
BeforeCall = Callable[[str, str, dict[str, Any], dict[str, Any]], None]
AfterCall = Callable[[str, str, dict[str, Any]], None]


def limits_on_states(patch: Patch, on_state_entered: StateEntered | None) -> None:
    if on_state_entered is None:
        return
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original = CommonStateField._eval_body

    def eval_body(self: Any, env: Any) -> None:
        on_state_entered(bool(env.is_standard_workflow()))
        original(self, env)

    patch(CommonStateField, "_eval_body", eval_body)


_registered: list[tuple[str, Any]] = []


def limits_on_api_calls(patch: Patch, before: BeforeCall | None, after: AfterCall | None) -> None:
    if before is None and after is None:
        return
    import boto3
    import botocore.handlers

    def before_parameter_build(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if before is not None:
            before(model.service_model.service_name, model.name, params, context)

    def after_call(model: Any, context: dict[str, Any], **_: Any) -> None:
        if after is not None:
            after(model.service_model.service_name, model.name, context)

    handlers = [("before-parameter-build", before_parameter_build), ("after-call", after_call)]
    patch(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, *handlers])
    # Sessions made before now (boto3's default one, used by the handlers) learn them too.
    if boto3.DEFAULT_SESSION is not None:
        for event, handler in handlers:
            boto3.DEFAULT_SESSION.events.register(event, handler, unique_id=f"{LIMITS_HANDLER_ID}-{event}")
    _registered[:] = handlers


def stop_limits_on_api_calls() -> None:
    import boto3

    if _registered and boto3.DEFAULT_SESSION is not None:
        for event, handler in _registered:
            boto3.DEFAULT_SESSION.events.unregister(event, handler, unique_id=f"{LIMITS_HANDLER_ID}-{event}")
    _registered.clear()
