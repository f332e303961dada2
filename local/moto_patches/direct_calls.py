"""In-process calls: what a boto3 call costs on its way to moto. Backends looked up directly,
no signature, routes and method names cached, DynamoDB responses written as JSON, DynamoDB and
EventBridge calls answered in botocore's `before-call`, and endpoints kept.

Replaces, in moto 5.2.5 and botocore: moto.core.base_backend.BackendDict.__getitem__ (7);
botocore.auth.SigV4Auth.add_auth, moto.core.responses.method_names_from_class and
camelcase_to_underscores, moto.core.botocore_stubber.BotocoreStubber.process_request (which
also routes StartSyncExecution's `sync-states` host, 19),
moto.core.serialize.JSONSerializer._serialize_result, and `gen_amzn_requestid_long` in
moto.utilities.aws_headers and moto.core.responses (10); a `before-call` handler added to
botocore.handlers.BUILTIN_HANDLERS and to boto3's default session (12);
botocore.regions.EndpointRulesetResolver.construct_endpoint (24).
Tests: tests/unit/test_patches_direct_calls.py.

7. Speed: every backend lookup (`lambda_backends[account]`, ...) takes a process-wide lock
   and scans a list of every backend dict. Once an account's backend exists, it is
   returned directly.
10. Speed: an in-process call goes through botocore and moto's HTTP emulation. Three of
   its costs are dropped: the SigV4 signature (moto never checks it; requests still carry
   an Authorization header naming the access key, from which moto takes the account),
   the scan of every service's URL patterns for each request (the route is cached by
   URL), and moto listing the handler class's methods by introspection, and turning the
   action's name into its method's letter by letter, on each call.
   DynamoDB responses made only of JSON values (every item operation's) are written with
   json.dumps instead of moto's serializer, which walks the API model for every attribute
   of every item (a Summary's query of 1,000 results took about a second). Each response's
   request id (52 characters) is one draw from moto's random, not 52.
12. Speed: even with 10., a DynamoDB or EventBridge call built, signed and sent an HTTP
   request that moto rebuilt as a WSGI request, and parsed again: four fifths of a PutItem's
   cost. botocore's `before-call` event answers these calls in-process: moto's own handler
   class runs the operation on the same backend, and botocore's own parser reads its
   response, so the caller gets the same result or error (modeled members included).
   botocore still validates and serialises the parameters. Not done here: retries (moto
   returns no throttling), and sessions made before `install` other than boto3's default.
24. Speed (botocore): for every DynamoDB and EventBridge call, botocore resolves the endpoint
   from the service's rule set: each of its parameters looked up through four kinds of context
   and a check of its builtin against every builtin's name, then the provider's cached answer
   rebuilt with new headers. The parameters are resolved as botocore resolves them, from a plan
   made once per operation (its builtins still customised by the `before-endpoint-resolution`
   handlers at every call), and the endpoint is kept per resolver and parameters.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import time
from typing import Any

from .json_copies import _NotJson
from .patching import Patch


def fast_backend_lookup(patch: Patch) -> None:
    from moto.core.base_backend import BackendDict

    original = BackendDict.__getitem__

    def getitem(self: Any, account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return original(self, account_id)

    patch(BackendDict, "__getitem__", getitem)


def fast_dispatch(patch: Patch) -> None:
    import botocore.auth
    import moto.core.responses as moto_responses
    from moto.core import botocore_stubber
    from moto.core.exceptions import HTTPException

    def add_auth(self: Any, request: Any) -> None:
        if type(self) is not botocore.auth.SigV4Auth or self.credentials is None:
            original_add_auth(self, request)  # S3, other signers, and the missing-credentials error
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{stamp[:8]}/{self._region_name}/"
            f"{self._service_name}/aws4_request, SignedHeaders=host;x-amz-date, Signature=embedded"
        )

    original_add_auth = botocore.auth.SigV4Auth.add_auth
    patch(botocore.auth.SigV4Auth, "add_auth", add_auth)
    patch(moto_responses, "method_names_from_class",
          functools.lru_cache(maxsize=None)(moto_responses.method_names_from_class))
    # the action's method name, from its API name (a pure function of the name, walked letter by
    # letter at every request)
    patch(moto_responses, "camelcase_to_underscores",
          functools.lru_cache(maxsize=4096)(moto_responses.camelcase_to_underscores))

    from moto.moto_api import recorder

    original_process = botocore_stubber.BotocoreStubber.process_request
    routes: dict[str, Any] = {}

    def process_request(self: Any, request: Any) -> Any:
        parsed_url, _ = botocore_stubber.get_equivalent_url_in_aws_domain(request.url)
        clean_url = f"{parsed_url.scheme}://{parsed_url.netloc}{parsed_url.path}"
        if parsed_url.netloc.startswith("sync-states."):  # StartSyncExecution's host (adaptation 19)
            clean_url = clean_url.replace("://sync-states.", "://states.", 1)
        route = routes.get(clean_url)
        if route is None:
            route = _route(clean_url)
            if route is None:
                return original_process(self, request)
            if len(routes) >= 4096:
                routes.clear()
            routes[clean_url] = route
        normalized = botocore_stubber.normalize_request(request)
        try:
            recorder._record_request(normalized)
            return route(normalized, normalized.raw_url, normalized.headers)
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    patch(botocore_stubber.BotocoreStubber, "process_request", process_request)

    from moto.core.serialize import JSONSerializer

    original_serialize_result = JSONSerializer._serialize_result

    def serialize_result(self: Any, resp: Any, result: Any) -> Any:
        if isinstance(result, dict) and self.operation_model.service_model.service_name == "dynamodb":
            try:
                plain = _json_values(result)
            except _NotJson:
                pass
            else:
                return self._serialized_result_to_response(resp, result, self.operation_model.output_shape, plain)
        return original_serialize_result(self, resp, result)

    patch(JSONSerializer, "_serialize_result", serialize_result)

    import moto.utilities.aws_headers as aws_headers
    from moto.moto_api._internal import mock_random

    def request_id(headerdict: dict[str, Any] | None = None) -> str:
        # 52 letters and digits, as moto's, from moto's (seedable) random: one draw of 39
        # bytes instead of 52 random.choice calls
        value = base64.b64encode(mock_random.getrandbits(312).to_bytes(39, "big"), b"xy").decode()
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = value
        return value

    patch(aws_headers, "gen_amzn_requestid_long", request_id)
    patch(moto_responses, "gen_amzn_requestid_long", request_id)


def _json_values(value: Any) -> Any:
    """`value` as moto's JSON serializer writes it when it holds only JSON values (absent
    members, None, left out); raises _NotJson for anything the serializer must convert."""
    if isinstance(value, dict):
        return {key: _json_values(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_json_values(item) for item in value]
    if isinstance(value, (str, bool, int, float)):
        return value
    raise _NotJson


def _route(clean_url: str) -> Any:
    """The handler moto's BotocoreStubber.process_request would pick for a URL, or None
    where it would do anything else (pass through, refuse, S3's many routes)."""
    import moto.backend_index as backend_index
    import moto.backends as backends
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.base_backend import BackendDict
    from moto.core.config import passthrough_service, passthrough_url, service_whitelisted

    if passthrough_url(clean_url):
        return None
    for service, pattern in backend_index.backend_url_patterns:
        if not pattern.match(clean_url):
            continue
        if service.startswith("s3") or passthrough_service(service) or not service_whitelisted(service):
            return None
        backend_dict = backends.get_backend(service)  # type: ignore[call-overload]
        if isinstance(backend_dict, BackendDict):
            regions = backend_dict[DEFAULT_ACCOUNT_ID]
            backend = regions["us-east-1"] if "us-east-1" in regions else regions["aws"]
        else:
            backend = backend_dict["global"]
        for url, method in backend.urls.items():
            if re.compile(url).match(clean_url):
                return method
        return None
    return None


def kept_endpoints(patch: Patch) -> None:
    """Adaptation 24: EndpointRulesetResolver.construct_endpoint for the direct-call services,
    its provider parameters resolved from a plan per operation and its endpoint kept per
    parameters. A miss (or parameters that are not hashable) resolves as botocore does."""
    import jmespath
    from botocore.exceptions import UnknownEndpointResolutionBuiltInName
    from botocore.regions import EndpointResolverBuiltins, EndpointRulesetResolver

    original = EndpointRulesetResolver.construct_endpoint
    builtin_names = frozenset(member.value for member in EndpointResolverBuiltins)

    def plan_of(self: Any, operation_model: Any) -> list[tuple[str, Any, list[tuple[str, Any]], Any]]:
        """Per parameter, as _get_provider_params resolves it: (name, static value, the context
        lookups to try in order, builtin name)."""
        static = self._get_static_context_params(operation_model)
        dynamic = self._get_dynamic_context_params(operation_model)
        operation_context = operation_model.operation_context_parameters
        client_context = self._get_client_context_params()
        plan = []
        for name, definition in self._param_definitions.items():
            lookups: list[tuple[str, Any]] = []
            if name in dynamic:
                lookups.append(("member", dynamic[name]))
            if name in operation_context:
                lookups.append(("path", operation_context[name]["path"]))
            if name in client_context:
                lookups.append(("client", client_context[name]))
            plan.append((name, static.get(name), lookups, definition.builtin))
        return plan

    def construct_endpoint(self: Any, operation_model: Any, call_args: Any, request_context: Any) -> Any:
        if self._service_model.service_name not in DIRECT_CALL_SERVICES:
            return original(self, operation_model, call_args, request_context)
        if call_args is None:
            call_args = {}
        if request_context is None:
            request_context = {}
        plans = self.__dict__.setdefault("_fanflow_plans", {})
        plan = plans.get(operation_model.name)
        if plan is None or plan[0] is not operation_model:
            plan = plans[operation_model.name] = (operation_model, plan_of(self, operation_model))
        builtins = self._get_customized_builtins(operation_model, call_args, request_context)
        params = []
        for name, static, lookups, builtin in plan[1]:
            value = static
            if value is None:
                for kind, where in lookups:
                    if kind == "member":
                        value = call_args.get(where)
                    elif kind == "path":
                        value = jmespath.search(where, call_args)
                    else:
                        value = self._client_context.get(where)
                    if value is not None:
                        break
            if value is None and builtin is not None:
                if builtin not in builtin_names:
                    raise UnknownEndpointResolutionBuiltInName(name=builtin)
                value = builtins.get(builtin)
                if callable(value):
                    value = value()
            if value is not None:
                params.append((name, value))
                self._register_endpoint_feature_ids(name, value)
        key = tuple(params)
        kept = self.__dict__.setdefault("_fanflow_endpoints", {})
        try:
            endpoint = kept.get(key)
        except TypeError:  # a list value (ResourceArnList): not kept
            return original(self, operation_model, call_args, request_context)
        if endpoint is None:
            endpoint = original(self, operation_model, call_args, request_context)
            if len(kept) >= 1024:
                kept.clear()
            kept[key] = endpoint
        # a new headers dict per call, as botocore makes one
        return endpoint._replace(headers=dict(endpoint.headers))

    patch(EndpointRulesetResolver, "construct_endpoint", construct_endpoint)


# Services whose in-process calls skip the HTTP emulation (adaptation 12): JSON protocol,
# the per-case hot path, and handlers that read nothing of the request but its headers
# and body.
DIRECT_CALL_SERVICES = ("dynamodb", "events")
DIRECT_CALL_HANDLER_ID = "fanflow-direct-call"


def _direct_call_handlers() -> dict[str, Any]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler

    return {"dynamodb": DynamoHandler, "events": EventsHandler}


def answer_in_process(patch: Patch) -> None:
    """botocore's `before-call` event lets a handler answer a call before it is sent; the
    answer is moto's, from the same handler class and backend its HTTP path would reach."""
    from urllib.parse import urlparse

    import boto3
    import botocore.handlers
    from botocore.awsrequest import AWSResponse
    from botocore.parsers import create_parser
    from moto import settings
    from moto.core.botocore_stubber import MockRawResponse
    from moto.core.models import botocore_stubber
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model
    from moto.iam.models import mark_account_as_visited
    from moto.moto_api import recorder
    from moto.utilities.utils import get_partition
    from werkzeug.datastructures import Headers, MultiDict
    from werkzeug.http import http_date

    handlers = _direct_call_handlers()
    for handler_class in handlers.values():  # loaded now, not by many threads at once later
        get_service_model(handler_class().boto3_service_name)
    response_parsers: dict[str, Any] = {}

    def prepare(handler: Any, *, url: str, region: str, headers: Any, body: bytes, access_key: str,
                operation: str) -> None:
        """What moto's BaseResponse.setup_class sets for a JSON-protocol POST, without
        building a WSGI request to read it back from."""
        parsed_url = urlparse(url)
        handler.is_werkzeug_request = False
        handler.normalized_request = None
        handler.parsed_url = parsed_url
        handler.raw_body = body
        handler.body = body.decode("utf-8")
        handler.form_data = {}
        handler.querystring = {}
        handler.data = handler.querystring
        handler.uri = url
        handler.path = handler.raw_path = parsed_url.path
        handler.method = "POST"
        handler.region = region
        handler.partition = get_partition(region)
        handler.uri_match = {}
        handler.headers = headers
        handler.response_headers = {"server": "amazon.com", "date": http_date()}
        if handler.automated_parameter_parsing:
            operation_model = get_service_model(handler.boto3_service_name).operation_model(operation)
            parser = PROTOCOL_PARSERS["json"](operation_model, map_type=handler.PROTOCOL_PARSER_MAP_TYPE)
            handler.params = parser.parse({"method": "POST", "values": MultiDict(), "headers": headers, "body": body,
                                           "url_path": handler.path, "url_params": {}})
        handler.access_key = access_key
        handler.current_account = handler.get_current_account()
        mark_account_as_visited(account_id=handler.current_account, access_key=access_key,
                                service=handler.service_name, region=region)

    region_pattern = re.compile(r"^https?://[^./]+\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?:/|$)")

    def answer(model: Any, params: dict[str, Any], request_signer: Any = None, **_: Any) -> Any:
        service = model.service_model.service_name
        handler_class = handlers.get(service)
        credentials = getattr(request_signer, "_credentials", None)
        url = params.get("url", "")
        match = region_pattern.match(url)
        if (handler_class is None or _direct is None or not botocore_stubber.enabled or credentials is None
                or match is None or recorder._user_enabled or not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT)
                or not isinstance(params.get("body"), bytes)):
            return None  # the HTTP emulation answers
        handler = handler_class()
        prepare(handler, url=url, region=match.group(1), headers=Headers(params["headers"]), body=params["body"],
                access_key=credentials.access_key, operation=model.name)
        status, headers, body = handler.call_action()
        raw = body.encode("utf-8") if isinstance(body, str) else body
        http = AWSResponse(url, int(status), {k: str(v) for k, v in headers.items()}, MockRawResponse(raw))
        protocol = model.service_model.resolved_protocol
        parser = response_parsers.get(protocol) or response_parsers.setdefault(protocol, create_parser(protocol))
        response = {"headers": http.headers, "status_code": http.status_code, "body": raw,
                    "context": {"operation_name": model.name}}
        parsed = parser.parse(response, model.output_shape)
        if http.status_code >= 300:
            _add_modeled_error_fields(response, parsed, model, parser)
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        return http, parsed

    patch(botocore.handlers, "BUILTIN_HANDLERS",
          [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", answer)])
    # Sessions made before now (boto3's default one, used by the handlers) learn it too.
    if boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.register("before-call", answer, unique_id=DIRECT_CALL_HANDLER_ID)
    global _direct
    _direct = answer


_direct: Any = None


def stop_direct_calls() -> None:
    global _direct
    import boto3

    if _direct is not None and boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.unregister("before-call", _direct, unique_id=DIRECT_CALL_HANDLER_ID)
    _direct = None


def _add_modeled_error_fields(response: dict[str, Any], parsed: dict[str, Any], model: Any, parser: Any) -> None:
    """botocore.endpoint.Endpoint._add_modeled_error_fields: an error's modeled members."""
    code = parsed.get("Error", {}).get("Code")
    if code is None:
        return
    shape = model.service_model.shape_for_error_code(code)
    if shape is None:
        return
    parsed.update(parser.parse(response, shape))
