"""Where a request runs. Every target gives the same thing: boto3 clients for the
deployed stack, its outputs, and (where it can be counted) how often Summary ran."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from lambda_fns import constants as c

TARGETS = ("embedded",)


class Target(Protocol):
    name: str
    outputs: dict[str, str]

    def client(self, service: str) -> Any: ...

    def summary_invocations(self, request_id: str) -> int | None: ...

    def set_compute_seconds(self, seconds: float) -> None: ...


@dataclass
class TargetOptions:
    lambda_concurrency: int = 1000
    compute_seconds: float | None = None
    faults: Any = None  # local.faults.FaultPlan, embedded only


class EmbeddedTarget:
    """The in-process emulator, deployed for the life of the context."""

    name = "embedded"

    def __init__(self, options: TargetOptions) -> None:
        from local.runtime import EmbeddedEmulator

        self.emulator = EmbeddedEmulator(
            lambda_concurrency=options.lambda_concurrency,
            compute_seconds=c.COMPUTE_SECONDS_EMBEDDED if options.compute_seconds is None else options.compute_seconds,
            faults=options.faults,
        )
        self.outputs: dict[str, str] = {}

    def start(self) -> None:
        self.emulator.start()
        self.outputs = self.emulator.outputs

    def stop(self) -> None:
        self.emulator.stop()

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    def summary_invocations(self, request_id: str) -> int | None:
        return self.emulator.summary_invocations(request_id)

    def set_compute_seconds(self, seconds: float) -> None:
        self.emulator.set_compute_seconds(seconds)


@contextlib.contextmanager
def open_target(name: str, options: TargetOptions | None = None) -> Iterator[Target]:
    options = options or TargetOptions()
    if name != "embedded":
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    target = EmbeddedTarget(options)
    target.start()
    try:
        yield target
    finally:
        target.stop()
