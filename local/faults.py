"""Fault injection for the embedded target: duplicate deliveries, failing computations,
lost completion events and conflicting counter-row transactions. Each choice is drawn from
the seed, the kind of fault and the caseId only (for a conflict: the request and the
transaction's number on its counter row), not from the order threads run in, so the same
seed and the same cases give the same faults, run after run."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class InjectedFailure(RuntimeError):
    """Raised inside a computation chosen to fail."""


@dataclass
class FaultPlan:
    duplicate_rate: float = 0.0
    failure_rate: float = 0.0
    drop_rate: float = 0.0
    conflict_rate: float = 0.0
    seed: int = 0
    duplicated: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, requestId, caseId)
    failed: set[str] = field(default_factory=set)  # caseIds
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

    def _draw(self, *key: str) -> float:
        digest = hashlib.sha256("\x1f".join((str(self.seed), *key)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def duplicate(self, kind: str, request_id: str, case_id: str) -> bool:
        """Whether to deliver this event twice; `kind` is the event's source. The requestId
        only files the choice under its request, for `report`."""
        hit = self._draw("duplicate", kind, case_id) < self.duplicate_rate
        if hit:
            with self._lock:
                self.duplicated.add((kind, request_id, case_id))
        return hit

    def fail(self, case_id: str) -> bool:
        hit = self._draw("fail", case_id) < self.failure_rate
        if hit:
            with self._lock:
                self.failed.add(case_id)
        return hit

    def drop(self, request_id: str, case_id: str) -> bool:
        hit = self._draw("drop", case_id) < self.drop_rate
        if hit:
            with self._lock:
                self.dropped.add((request_id, case_id))
        return hit

    def conflict(self, request_id: str) -> bool:
        """Whether this transaction on the request's counter row is cancelled with
        TransactionConflict: the n-th transaction on a request's counter row draws from (seed, n)."""
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
                "failedCases": sorted(self.failed, key=_natural),
                "droppedCompletions": sorted((case for rid, case in self.dropped if rid == request_id), key=_natural),
            }


def _natural(case_id: str) -> tuple[int, int | str]:
    return (0, int(case_id)) if case_id.isdigit() else (1, case_id)
