"""Command-line option types and checks, shared by every command. A value out of range stops
the command when its arguments are parsed (exit 2, a message naming the option and the
allowed range), and a file the command would write is checked before any work starts."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambda_fns import constants as c
from lambda_fns.request_model import RequestError, check_request_id

from .errors import UsageError


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _range(low: float | None, high: float | None, *, above: bool = False) -> str:
    if low is not None and high is not None:
        return f"from {_show(low)} to {_show(high)}"
    if low is not None:
        return f"greater than {_show(low)}" if above else f"{_show(low)} or more"
    return "any"


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {_range(low, high)}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {_range(low, high)}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def number(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (or greater than `low` when `above`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {_range(low, high, above=above)}, "
                                             f"got {text!r}") from None
        if (not math.isfinite(value) or (low is not None and (value <= low if above else value < low))
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"must be a number {_range(low, high, above=above)}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def request_id(text: str) -> str:
    """A requestId: any text of 1 to 256 characters."""
    try:
        check_request_id(text)
    except RequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# The ranges the commands share.
CASES = integer(1, c.MAX_CASES)
COMPUTE_SECONDS = number(0, c.COMPUTE_TIMEOUT_SECONDS)  # a Lambda compute target's timeout bounds its work
# At least 2: a fan-in batch holds its consumer while the consumer's Increment runs CountBatch.
LAMBDA_CONCURRENCY = integer(2, 10_000)
SECONDS = number(0, above=True)  # a timeout or an interval
DEADLINE_SECONDS = number(1, c.MAX_DEADLINE_SECONDS)
RETENTION_DAYS = integer(1, 3650)
RATE = number(0, 1)


def aws_region(text: str) -> str:
    """An AWS Region's name (its quotas: local/aws_limits/quotas.py; one it does not list gets
    the figures of "every other Region")."""
    from local.aws_limits.quotas import known_region

    if not known_region(text):
        raise argparse.ArgumentTypeError(f"expected an AWS Region name such as us-east-1, got {text!r}")
    return text


def add_aws_limits(parser: Any, *, what: str) -> None:
    """--aws-limits REGION: the embedded emulator under that Region's published limits."""
    parser.add_argument(
        "--aws-limits", type=aws_region, metavar="REGION",
        help=f"run {what} under REGION's published AWS limits, in real time: Step Functions' and "
        "EventBridge's token buckets, Lambda's concurrency (the account's --lambda-concurrency and each "
        "function's reserved), its scaling and async retries, DynamoDB partitions' writes and transactions "
        "that conflict, and the latencies `fanflow plan` assumes; the same model as `fanflow plan --region "
        "REGION` (default: no limits, as fast as this machine allows)")
    parser.add_argument(
        "--time-scale", type=number(1, 1000), default=None, metavar="K",
        help="with --aws-limits: run K times slower than AWS would (every latency, rate, compute time and "
        "batching window stretched K times), so that this machine's CPU, not AWS's limits, does not set the "
        "pace; divide the times it shows by K for AWS's (default: 1, real time)")


def check_time_scale(aws_limits: str | None, time_scale: float | None) -> None:
    if time_scale is not None and aws_limits is None:
        raise UsageError("--time-scale stretches a run under AWS's limits: give --aws-limits REGION too")


def check_writable(path: Path, option: str) -> None:
    """UsageError unless `path` can be written: its directory exists and is writable, and it is
    not a directory itself. Checked before the work whose result it will hold."""
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    directory = path.parent
    if not directory.is_dir():
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if not os.access(path if path.exists() else directory, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")


def fan_in_batching(batch_size: int | None, window_seconds: int | None) -> dict[str, int] | None:
    """`--fan-in-batch-size` and `--fan-in-window` together, as an event source mapping takes them
    (each is range-checked by its parser; together, more than 10 messages need a window)."""
    if batch_size is None and window_seconds is None:
        return None
    from infra.fan_in_settings import OPTION_NAMES, check_batching

    size = c.FAN_IN_BATCH_SIZE if batch_size is None else batch_size
    window = c.FAN_IN_BATCH_WINDOW_SECONDS if window_seconds is None else window_seconds
    try:
        check_batching(batch_size=size, batch_window_seconds=window, max_concurrency=c.FAN_IN_MAX_CONCURRENCY,
                       names=OPTION_NAMES)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {"batch_size": size, "window_seconds": window}


def add_fault_options(group: argparse._ArgumentGroup, *, drop_note: str) -> None:
    """The fault options `fanflow run` and `fanflow up` share (local.faults.FaultPlan's rates
    and seed), with the same names, ranges and validators; `drop_note` says what a drop leads to."""
    group.add_argument("--duplicate-rate", type=RATE, default=0.0, metavar="R",
                       help="deliver each event twice with probability R (0-1)")
    group.add_argument("--failure-rate", type=RATE, default=0.0, metavar="R",
                       help="make each computation raise with probability R (0-1)")
    group.add_argument("--drop-rate", type=RATE, default=0.0, metavar="R",
                       help=f"lose each completion event with probability R (0-1; {drop_note})")
    group.add_argument("--conflict-rate", type=RATE, default=0.0, metavar="R",
                       help="cancel each transaction on a counter row with TransactionConflict with probability R "
                       "(0-1)")
    group.add_argument("--seed", type=integer(0), default=0, metavar="S",
                       help="seed for the fault choices, 0 or more (default: %(default)s)")
