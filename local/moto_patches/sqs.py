"""moto's SQS message path, fast: attributes read directly, messages indexed by receipt
handle, the clock read once per call, receipt handles drawn at once.

Replaces, in moto 5.2.5 (moto.sqs.models): unix_time, unix_time_millis,
SQSBackend.is_message_valid_based_on_retention_period, Queue.__init__ (its `_messages`),
Message.mark_received, Queue.delete_message and generate_receipt_handle (22).
Tests: tests/unit/test_patches_sqs.py.

22. Speed: moto's SQS walks every message of a queue several times per message received (to
   read one attribute), rebuilds the message list to delete one message, reads the clock
   through naive datetimes per message, and draws each receipt handle's 185 letters one call
   at a time. The attribute is read directly, messages live in an ordered map indexed by
   receipt handle, the clock is `time.time()`, and a handle is one draw of 185 letters.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from .patching import Patch


class _Messages:
    """A queue's messages in arrival order, with O(1) removal (moto keeps a list and rebuilds
    it to delete one message). Iteration walks a snapshot: senders append while pollers read."""

    def __init__(self, messages: Iterable[Any] = ()) -> None:
        self._items: dict[int, Any] = {id(message): message for message in messages}

    def append(self, message: Any) -> None:
        self._items[id(message)] = message

    def remove(self, message: Any) -> None:
        del self._items[id(message)]

    def __contains__(self, message: Any) -> bool:
        return id(message) in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


_receipts: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def fast_sqs(patch: Patch) -> None:
    """Speed on the message path (adaptation 22). moto's SQS computes every queue attribute,
    three of them by walking every message, to read one attribute on each message received
    (the retention period); deletes a message by rebuilding the message list after scanning
    every receipt handle of every message; and reads the clock through naive datetimes for
    each message's visibility. A 1,000-message backlog cost seconds per batch. Here the
    retention period is read directly, a receipt handle finds its message through an index,
    the queue's messages live in an ordered map, and the clock is `time.time()`."""
    import moto.sqs.models as sqs_models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    patch(sqs_models, "unix_time", lambda dt=None: time.time() if dt is None else _unix_time(dt))
    patch(sqs_models, "unix_time_millis", lambda dt=None: (time.time() if dt is None else _unix_time(dt)) * 1000.0)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    patch(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period",
          is_message_valid_based_on_retention_period)

    original_init = sqs_models.Queue.__init__

    def queue_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._messages = _Messages(self._messages)

    patch(sqs_models.Queue, "__init__", queue_init)
    original_received = sqs_models.Message.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_received(self, visibility_timeout)
        _receipts[self.receipt_handle] = self

    patch(sqs_models.Message, "mark_received", mark_received)

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleted before: gracefully, as moto does
        if not isinstance(self._messages, _Messages):  # replaced by a purge
            self._messages = _Messages(self._messages)
        message = _receipts.get(receipt_handle)
        if message is None or message not in self._messages:
            raise ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        self._messages.remove(message)

    patch(sqs_models.Queue, "delete_message", delete_message)

    import string

    from moto.moto_api._internal import mock_random

    def generate_receipt_handle() -> str:
        # moto's: 185 lowercase letters from its (seedable) random, in one call
        return "".join(mock_random.choices(string.ascii_lowercase, k=185))

    patch(sqs_models, "generate_receipt_handle", generate_receipt_handle)


def _unix_time(dt: Any) -> float:
    from moto.core.utils import unix_time

    return float(unix_time(dt))
