"""Fault injection for the embedded target: duplicate deliveries, failing computations,
lost completion events and conflicting counter-row transactions. Each choice is drawn from
the seed, the kind of fault and the caseId only (for a conflict: the request and the
transaction's number on its counter row), not from the order threads run in, so the same
seed and the same cases give the same faults, run after run.

A request's cases may run more than once: a redrive re-emits the cases that did not succeed
under the same requestId as attempt 2, 3, ... (the fan-out event's `detail.attempt`, echoed by
the completion event; absent means 1). Case faults (duplicate, fail, drop) apply to attempt 1
only, unless `every_attempt`: then each later attempt draws afresh (the attempt is part of the
draw), so a case that failed once fails again with the same probability, not for certain."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lambda_fns import keys


class InjectedFailure(RuntimeError):
    """Raised inside a computation chosen to fail."""


def attempt_of(detail: Any) -> int:
    """The attempt an event's detail (or a compute step's input) is for (lambda_fns.keys.attempt_of);
    1 when it names none, or none that is an attempt: a fault draw never fails for it."""
    return keys.attempt_of(detail) or 1


@dataclass
class FaultPlan:
    duplicate_rate: float = 0.0
    failure_rate: float = 0.0
    drop_rate: float = 0.0
    conflict_rate: float = 0.0
    seed: int = 0
    every_attempt: bool = False  # case faults on every attempt of a case, not only its first
    duplicated: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, requestId, caseId)
    failed: set[tuple[str, str]] = field(default_factory=set)  # (requestId, caseId)
    dropped: set[tuple[str, str]] = field(default_factory=set)  # (requestId, caseId)
    conflicts: Counter[str] = field(default_factory=Counter)  # injected TransactionConflicts per requestId
    _transactions: Counter[str] = field(default_factory=Counter, repr=False)  # counter-row transactions seen
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "failure_rate", "drop_rate", "conflict_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")

    @property
    def active(self) -> bool:
        return bool(self.duplicate_rate or self.failure_rate or self.drop_rate or self.conflict_rate)

    def settings(self) -> dict[str, Any]:
        """The plan's options, as an endpoint describes them (camelCase, as the CLI's option names)."""
        return {"duplicateRate": self.duplicate_rate, "failureRate": self.failure_rate, "dropRate": self.drop_rate,
                "conflictRate": self.conflict_rate, "seed": self.seed, "everyAttempt": self.every_attempt}

    def _draw(self, *key: str) -> float:
        digest = hashlib.sha256("\x1f".join((str(self.seed), *key)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def _case_hit(self, rate: float, attempt: int, *key: str) -> bool:
        """Whether a case fault (its kind and caseId in `key`) hits this attempt of the case.
        Attempt 1 draws from the key alone, as before attempts existed, so a seed gives the faults
        it always gave; a later attempt (only with every_attempt) adds its number to the draw."""
        if not rate or (attempt > 1 and not self.every_attempt):
            return False
        return self._draw(*key, *(() if attempt == 1 else (f"attempt {attempt}",))) < rate

    def duplicate(self, kind: str, request_id: str, case_id: str, attempt: int = 1) -> bool:
        """Whether to deliver this event twice; `kind` is the event's source. The requestId
        only files the choice under its request, for `report`."""
        hit = self._case_hit(self.duplicate_rate, attempt, "duplicate", kind, case_id)
        if hit:
            with self._lock:
                self.duplicated.add((kind, request_id, case_id))
        return hit

    def fail(self, request_id: str, case_id: str, attempt: int = 1) -> bool:
        """Whether this attempt's computation of the case raises. The requestId only files the
        choice under its request, for `report`."""
        hit = self._case_hit(self.failure_rate, attempt, "fail", case_id)
        if hit:
            with self._lock:
                self.failed.add((request_id, case_id))
        return hit

    def drop(self, request_id: str, case_id: str, attempt: int = 1) -> bool:
        """Whether to lose this completion event."""
        hit = self._case_hit(self.drop_rate, attempt, "drop", case_id)
        if hit:
            with self._lock:
                self.dropped.add((request_id, case_id))
        return hit

    def conflict(self, request_id: str) -> bool:
        """Whether this transaction on the request's counter row is cancelled with
        TransactionConflict: the n-th transaction on a request's counter row draws from (seed, n).
        Not a case fault: it applies to every transaction, whichever attempt's cases it counts."""
        with self._lock:
            self._transactions[request_id] += 1
            number = self._transactions[request_id]
        hit = self._draw("conflict", str(number)) < self.conflict_rate
        if hit:
            with self._lock:
                self.conflicts[request_id] += 1
        return hit

    def report(self, request_id: str) -> dict[str, Any]:
        with self._lock:
            return {
                "injectedConflicts": self.conflicts[request_id],
                "duplicatedEvents": sorted(f"{kind}:{case}" for kind, rid, case in self.duplicated
                                           if rid == request_id),
                "failedCases": sorted((case for rid, case in self.failed if rid == request_id), key=_natural),
                "droppedCompletions": sorted((case for rid, case in self.dropped if rid == request_id), key=_natural),
            }


def _natural(case_id: str) -> tuple[int, int | str]:
    return (0, int(case_id)) if case_id.isdigit() else (1, case_id)
