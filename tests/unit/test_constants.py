"""lambda_fns/constants.py: the shared names are consistent, and written only there."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lambda_fns import constants as c

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["PREPROCESS_SOURCE", "COMPUTE_SOURCE", "SUMMARY_SOURCE"]
DETAIL_TYPES = ["CASE_DETAIL_TYPE", "COMPLETION_DETAIL_TYPE", "SUMMARY_DETAIL_TYPE"]
# The seed's event contract: the literals must live in constants.py only.
CONTRACT_LITERALS = ["com.preprocess.stepfunction", "com.computing.lambda"]


def test_sources_and_detail_types_are_distinct_non_empty_strings() -> None:
    # GIVEN every event source and detail-type  THEN each is a non-empty string and no two are equal
    values = [getattr(c, name) for name in SOURCES + DETAIL_TYPES]
    assert all(isinstance(v, str) and v.strip() for v in values)
    assert len(set(values)) == len(values)


def test_seed_event_contract_is_kept() -> None:
    # GIVEN seed-style compute functions  THEN the fan-out and completion sources are the seed's
    assert [c.PREPROCESS_SOURCE, c.COMPUTE_SOURCE] == CONTRACT_LITERALS


def test_final_statuses() -> None:
    # GIVEN the lifecycle statuses  THEN the final ones are exactly the five outcomes
    assert frozenset({c.STATUS_SUCCEEDED, c.STATUS_PARTIAL, c.STATUS_FAILED, c.STATUS_TIMED_OUT,
                      c.STATUS_CANCELLED}) == c.FINAL_STATUSES
    assert c.STATUS_RUNNING not in c.FINAL_STATUSES
    assert c.STATUS_SUMMARIZING not in c.FINAL_STATUSES
    statuses = [getattr(c, name) for name in dir(c) if name.startswith("STATUS_")]
    assert len(set(statuses)) == len(statuses) == 7
    # AND every final one but SUCCEEDED may be redriven (it has cases that failed or never completed)
    assert c.FINAL_STATUSES - {c.STATUS_SUCCEEDED} == c.REDRIVABLE_STATUSES


def test_case_outcomes_are_final_statuses() -> None:
    # GIVEN a case outcome  THEN it is also the request status when every case shares it
    assert {c.CASE_SUCCEEDED, c.CASE_FAILED} <= c.FINAL_STATUSES


def test_a_fan_out_chunk_is_a_whole_number_of_put_events_calls() -> None:
    # GIVEN the fan-out chunk size  THEN it fills whole PutEvents calls of at most 10 entries
    assert c.PUT_EVENTS_MAX_ENTRIES == 10
    assert c.FANOUT_CHUNK_CASES > 0
    assert c.FANOUT_CHUNK_CASES % c.PUT_EVENTS_MAX_ENTRIES == 0
    # so a request of N cases costs ceil(N / 10) calls whichever chunk a case lands in
    for n in (1, 10, 11, 250, 2_500, c.MAX_CASES):
        chunks = [min(c.FANOUT_CHUNK_CASES, n - start) for start in range(0, n, c.FANOUT_CHUNK_CASES)]
        calls = sum(math.ceil(size / c.PUT_EVENTS_MAX_ENTRIES) for size in chunks)
        assert calls == math.ceil(n / c.PUT_EVENTS_MAX_ENTRIES)
    # AND a million cases make 1,000 chunks: a Distributed Map's items, far from its history
    assert math.ceil(c.MAX_CASES / c.FANOUT_CHUNK_CASES) == 1000


def test_ten_of_the_largest_cases_fit_in_a_put_events_call_and_a_million_in_a_stored_request() -> None:
    # GIVEN the largest case  THEN ten of them fit in one PutEvents call (256 KB with envelopes)
    assert c.PUT_EVENTS_MAX_ENTRIES * c.MAX_CASE_BYTES < c.SFN_MAX_INPUT_BYTES
    # AND a stored request of a million cases of 256 bytes each fits the referenced limit
    assert c.MAX_CASES * 256 < c.MAX_REFERENCED_REQUEST_BYTES


def test_limits_are_coherent() -> None:
    # GIVEN the size limits  THEN a request fits in a Step Functions input with room to spare
    assert c.SFN_MAX_INPUT_BYTES == 256 * 1024
    assert 0 < c.MAX_REQUEST_BYTES < c.SFN_MAX_INPUT_BYTES
    # AND the deadline outlasts a case's three compute attempts
    assert c.DEFAULT_DEADLINE_SECONDS > 3 * c.COMPUTE_TIMEOUT_SECONDS


def python_sources() -> list[Path]:
    handlers = [p for p in sorted((ROOT / "lambda_fns").glob("*.py")) if p.name != "constants.py"]
    infra = sorted((ROOT / "infra").rglob("*.py"))
    return handlers + infra


def test_the_source_scan_sees_the_code() -> None:
    # GIVEN the scan below  THEN it actually covers the handlers and the infra
    names = {p.relative_to(ROOT).as_posix() for p in python_sources()}
    assert {"lambda_fns/compute.py", "lambda_fns/emit.py", "infra/stack.py"} <= names
    assert "lambda_fns/constants.py" not in names


@pytest.mark.parametrize("literal", CONTRACT_LITERALS)
def test_handlers_and_infra_use_the_constants_not_literals(literal: str) -> None:
    # GIVEN the handler and infra sources (constants.py aside)
    # WHEN they are searched for the contract's literal strings
    offenders = [p.relative_to(ROOT).as_posix() for p in python_sources() if literal in p.read_text()]
    # THEN none writes it: each refers to lambda_fns.constants
    assert offenders == []
    # AND the literal does live in constants.py (the scan would find it)
    assert literal in (ROOT / "lambda_fns" / "constants.py").read_text()


def test_a_request_closes_before_anything_it_needs_expires() -> None:
    # GIVEN the longest close: a claim tried at every planned slot, then Summary's every attempt
    longest_close = c.CLAIM_ATTEMPTS * c.CLAIM_RETRY_SECONDS + c.SUMMARY_ATTEMPTS * c.SUMMARY_TIMEOUT_SECONDS
    # THEN it ends within the margin a deadline leaves before the retention (manifests expire then)
    assert longest_close < c.CLOSE_MARGIN_SECONDS
    assert c.max_deadline_seconds(c.DEFAULT_RETENTION_DAYS * 86_400) + c.CLOSE_MARGIN_SECONDS == \
        c.DEFAULT_RETENTION_DAYS * 86_400
    # AND within a Standard execution's year, with the longest deadline
    assert c.MAX_DEADLINE_SECONDS + longest_close < c.STANDARD_EXECUTION_MAX_SECONDS
    # AND the planned slots outlast a stale claim: a claim made just before the deadline is taken over
    assert (c.CLAIM_ATTEMPTS - 1) * c.CLAIM_RETRY_SECONDS > c.STALE_CLAIM_SECONDS
