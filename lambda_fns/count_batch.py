"""CountBatch: the first state of the Increment workflow. Counts one batch of completions
exactly once (lambda_fns/counting.py) and returns what the workflow needs next: the
messages to deliver again and the requests whose count reached its target."""

from __future__ import annotations

import logging
import time
from typing import Any

from . import constants as c
from .counting import Completion, Tables, count_batch
from .support import client, require_env
from .telemetry import Telemetry, log

_ENV = require_env([c.ENV_COUNTER_TABLE, c.ENV_RESULTS_TABLE])
_DDB = client("dynamodb")
_TABLES = Tables(counter=_ENV[c.ENV_COUNTER_TABLE], results=_ENV[c.ENV_RESULTS_TABLE])
_TELEMETRY = Telemetry("count")
_LOG = _TELEMETRY.logger


def _log(message: str, **fields: Any) -> None:
    log(_LOG, logging.INFO, message, **fields)


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    completions = [Completion.from_input(item) for item in event["completions"]]
    result = count_batch(_DDB, _TABLES, completions, log=_log)
    out = result.to_output(claimed_at=time.time())
    log(_LOG, logging.INFO, "batch counted", completions=len(completions), **out["stats"],
        failed=len(result.failed), claims=len(result.claims))
    return out
