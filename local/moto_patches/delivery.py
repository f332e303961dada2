"""EventBridge's deliveries: which rule targets the runtime delivers (Lambda functions, state
machines, SQS queues), what each is handed, PutEvents' one message per event, and SQS event
source mappings handed to the runtime's poller.

Replaces, in moto 5.2.5: moto.events.models.Rule.send_to_targets (1, 17),
moto.events.models.EventsBackend.put_events (23), and
moto.awslambda.models.LambdaBackend.create_event_source_mapping, whose SQS mapping no longer
stays in the queue's `lambda_event_source_mappings` (20). `target_input` and `send_to_queue`
are what the runtime calls to render a target's input and to send to a queue target.
Tests: tests/unit/test_patches_delivery.py.

1. EventBridge rules whose target is a Lambda function or a state machine raise
   NotImplementedError. Those targets are handed to the runtime's `deliver` callback,
   which delivers them asynchronously, as on AWS, rendering their input with
   `target_input` (Input, InputPath, InputTransformer, or the whole event). moto's own
   InputTransformer inserts string values unquoted, so `{"id": <id>}` is not JSON;
   `target_input` quotes them as EventBridge does. DISABLED rules deliver nothing.
17. EventBridge rules whose target is an SQS queue are delivered by the runtime too
   (`deliver`), asynchronously: moto sent the message inside PutEvents, with the event's
   `time` rewritten in place. `send_to_queue` sends what EventBridge sends: one message
   whose body is the event, or the target's rendered input.
20. SQS event source mappings: moto invokes the function inside SendMessage, one message at a
   time. With `EngineHooks.on_event_source_mapping`, the mapping is handed to the runtime's
   poller (local/event_sources.py), which reads the queue in batches as Lambda does.
23. Speed: PutEvents builds an event message for every rule of the bus (a dozen on fanflow's),
   decoding the entry's Detail and reading the clock for each, and each rule flattens its own
   message (a JSON round trip) to match it. The message is built once per entry, as EventBridge
   has one event (one id, one time) for all its rules; each rule is matched against it, and a
   rule's native (moto-delivered) targets get their own copy, as they got one before.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from moto.events.models import Rule
from moto.utilities.arns import parse_arn

from .asl_engine import _jsonpath
from .json_copies import json_deepcopy
from .patching import MotoVersionError, Patch

Deliver = Callable[[dict[str, Any], dict[str, Any]], None]


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What EventBridge hands a target for `event`, following the target's input settings."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        found = _jsonpath(target["InputPath"]).find(event)
        return found[0].value if found else None
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        return render_input_template(transformer.get("InputTemplate", "<aws.events.event.json>"),
                                     transformer.get("InputPathsMap", {}), event)
    whole = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(whole.get("time"), (int, float)):
        whole["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole["time"]))
    return whole


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def render_input_template(template: str, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """EventBridge's InputTransformer: a placeholder inside a JSON string is replaced by the
    raw value; anywhere else by the value as JSON (so strings get their quotes). The result
    is JSON when the template renders to JSON, else the text."""
    values: dict[str, Any] = {"aws.events.event": event, "aws.events.event.json": event}
    for name, path in paths.items():
        found = _jsonpath(path).find(event)
        values[name] = found[0].value if found else None
    out: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in values:
            continue
        out.append(template[position:match.start()])
        value = values[name]
        if _inside_json_string(template, match.start()):
            out.append(value if isinstance(value, str) else ("" if value is None else json.dumps(value)))
        else:
            out.append(json.dumps(value))
        position = match.end()
    out.append(template[position:])
    rendered = "".join(out)
    try:
        return json.loads(rendered)
    except ValueError:
        return rendered


def _inside_json_string(text: str, index: int) -> bool:
    inside, escaped = False, False
    for char in text[:index]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


_flattened = threading.local()


def _matches(pattern: Any, event: dict[str, Any]) -> bool:
    """EventPattern.matches_event, flattening the event once for all the rules of its bus (moto
    flattens it again, after a JSON round trip, for every rule)."""
    if not pattern.get_pattern():
        return True
    cached = getattr(_flattened, "event", None)
    if cached is None or cached[0] is not event:
        cached = (event, pattern._flatten_dict(json.loads(json.dumps(event))))
        _flattened.event = cached
    return bool(pattern._does_event_match(cached[1], pattern.get_pattern()))


def one_message_per_event(patch: Patch) -> None:
    """EventsBackend.put_events with the event message built once per entry instead of once per
    rule of its bus (adaptation 23). Entries moto refuses, or whose Detail is not a JSON object,
    go to moto's own put_events, one at a time, as before."""
    import moto.events.models as events_models

    original = events_models.EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) > 10:
            return original(self, events)  # moto's ValidationException
        entries: list[dict[str, Any]] = []
        for event in events:
            if not (event.get("Source") and event.get("DetailType") and event.get("Detail")):
                entries.extend(original(self, [event]))  # its error entry; nothing is sent
                continue
            try:
                detail = json.loads(event["Detail"])
            except ValueError:
                entries.extend(original(self, [event]))  # MalformedDetail
                continue
            if not isinstance(detail, dict):
                entries.extend(original(self, [event]))  # moto warns, then sends it to every rule
                continue
            # moto's own steps, in its order: the id, then the bus (which may raise)
            event_id = str(events_models.random.uuid4())
            entries.append({"EventId": event_id})
            event_bus = self.describe_event_bus(self._normalize_event_bus_arn(event.get("EventBusName")))
            message = json_deepcopy(events_models._BASE_EVENT_MESSAGE)
            message["id"] = event_id
            message["detail-type"] = event["DetailType"]
            message["source"] = event["Source"]
            message["account"] = self.account_id
            message["time"] = event.get("Time", events_models.unix_time())
            message["region"] = self.region_name
            message["resources"] = event.get("Resources", [])
            message["detail"] = detail
            message["ingestion-time"] = events_models.unix_time()
            for rule in list(event_bus.rules.values()):
                rule.send_to_targets(message)
        return entries

    if not hasattr(events_models, "_BASE_EVENT_MESSAGE") or not hasattr(events_models, "unix_time"):
        raise MotoVersionError("moto.events.models no longer builds messages as adaptation 23 expects")
    patch(events_models.EventsBackend, "put_events", put_events)


# Rule targets the runtime delivers (adaptations 1 and 17); moto delivers the rest itself.
RUNTIME_TARGET_SERVICES = ("lambda", "states", "sqs")


def polled_event_sources(patch: Patch, on_mapping: Callable[[Any], None] | None) -> None:
    """moto delivers an SQS event source mapping's messages inside SendMessage: one message,
    one synchronous invocation, in the sender's thread, with no batching window, no partial
    batch response and no concurrency limit. Lambda polls the queue instead, in batches
    (Lambda developer guide, "Using Lambda with Amazon SQS"). A mapping for a queue is
    handed to the runtime's poller (`on_mapping`), and moto's inline delivery is left off
    (adaptation 20)."""
    if on_mapping is None:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    original = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        arn = parse_arn(mapping.event_source_arn)
        if arn.service == "sqs":
            for queue in sqs_backends[arn.account][arn.region].queues.values():
                if queue.queue_arn == mapping.event_source_arn:
                    queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
            on_mapping(mapping)
        return mapping

    patch(LambdaBackend, "create_event_source_mapping", create_event_source_mapping)


def send_to_queue(queue_arn: str, body: str) -> str:
    """What EventBridge does for an SQS rule target: one message whose body is the event (or
    the target's input), sent with the queue's own delay (EventBridge user guide, "Amazon SQS
    queues as targets"). The message goes straight to the queue: moto's SendMessage walks
    every message of the queue for its attributes, twice per message. Returns its id."""
    from moto.sqs.models import Message, sqs_backends

    arn = parse_arn(queue_arn)
    queue: Any = sqs_backends[arn.account][arn.region].get_queue(arn.resource_id)
    if len(body.encode()) > int(queue.maximum_message_size):
        raise ValueError(f"a message of {len(body.encode())} bytes exceeds the queue's maximum "
                         f"({queue.maximum_message_size})")
    message = Message(str(uuid.uuid4()), body)
    message.mark_sent(delay_seconds=int(queue.delay_seconds or 0))
    queue.add_message(message)
    return str(message.id)


def route_rule_targets(patch: Patch, deliver: Deliver) -> None:
    """Adaptations 1 and 17: Rule.send_to_targets hands the targets the runtime delivers to
    `deliver`, and leaves the rest to moto's own send_to_targets."""
    original_send = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state == "DISABLED" or not _matches(self.event_pattern, original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in RUNTIME_TARGET_SERVICES]
        for target in ours:
            deliver(target, json_deepcopy(original_event))
        native = [t for t in self.targets if t not in ours]
        if native:
            clone = copy.copy(self)
            clone.targets = native
            # its own copy: one message serves every rule of the bus (adaptation 23)
            original_send(clone, json_deepcopy(original_event), transform_input)  # type: ignore[arg-type]

    patch(Rule, "send_to_targets", send_to_targets)


def observe_put_events(patch: Patch, on_put_events: Callable[[list[dict[str, Any]]], None] | None) -> None:
    """`on_put_events(entries)` sees every PutEvents call (the benchmark counts them)."""
    if on_put_events is None:
        return
    from moto.events.models import EventsBackend

    original_put_events = EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
        on_put_events(events)
        return original_put_events(self, events)

    patch(EventsBackend, "put_events", put_events)
