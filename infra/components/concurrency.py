"""Reserved concurrency: a ceiling on each compute function, so a large request cannot take the
account's whole concurrency, and a floor under each orchestration function (Prepare, Emit,
Summary, and the fan-in's), so that a request can always start, fan out and close while
compute is busy. Lambda's reserved concurrency is both at once for a function
(docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html), and the account keeps
100 unreserved: the defaults reserve 660 of the default 1,000 (3 x 200 + 10 + 40 + 10).

Configured by context: `-c computeConcurrency=N` (each compute function's ceiling; 0 reserves
none) and `-c orchestrationConcurrency=N` (each orchestration function's floor, Emit's at least
the fan-out's Map concurrency; 0 reserves none), for accounts with less concurrency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_lambda as lambda_

from lambda_fns import constants as c

DEFAULT_COMPUTE_CONCURRENCY = 200
DEFAULT_ORCHESTRATION_CONCURRENCY = 10


@dataclass(frozen=True)
class ConcurrencyPlan:
    compute: int = DEFAULT_COMPUTE_CONCURRENCY  # per compute function; 0: unreserved
    orchestration: int = DEFAULT_ORCHESTRATION_CONCURRENCY  # per orchestration function; 0: unreserved

    def __post_init__(self) -> None:
        for name in ("compute", "orchestration"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}Concurrency must be 0 (unreserved) or more, got {getattr(self, name)}")

    @classmethod
    def from_context(cls, get: Any) -> ConcurrencyPlan:
        """From `-c computeConcurrency=N -c orchestrationConcurrency=N` (node.try_get_context)."""
        compute, orchestration = get("computeConcurrency"), get("orchestrationConcurrency")
        return cls(compute=DEFAULT_COMPUTE_CONCURRENCY if compute is None else int(compute),
                   orchestration=DEFAULT_ORCHESTRATION_CONCURRENCY if orchestration is None else int(orchestration))

    @property
    def compute_ceiling(self) -> int:
        """How many cases may compute at once on one compute function (the default deadline's
        assumption): its ceiling, else the account's default concurrency."""
        return self.compute or c.ACCOUNT_LAMBDA_CONCURRENCY

    def cap_compute(self, function: lambda_.Function) -> None:
        """Give a compute function its ceiling."""
        if self.compute:
            _reserve(function, self.compute)

    def reserve_orchestration(self, function: lambda_.Function, *, at_least: int = 0) -> None:
        """Give an orchestration function its floor (at least `at_least`, when it runs that many
        at once by design). The fan-in's functions get theirs with this call too."""
        if self.orchestration:
            _reserve(function, max(self.orchestration, at_least))


def _reserve(function: lambda_.Function, executions: int) -> None:
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.reserved_concurrent_executions = executions
