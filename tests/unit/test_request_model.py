"""lambda_fns/request_model.py: every rejection names its problem; the seed's format is accepted."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lambda_fns import constants as c
from lambda_fns.request_model import FanRequest, RequestError, default_deadline_seconds, execution_name, parse_request

# The seed's dataset_5.json, byte for byte: compact, "length" as a string.
SEED = (
    '{"requestId":"123456","requests":[{"caseId":"0"},{"caseId":"1"},{"caseId":"2"},'
    '{"caseId":"3"},{"caseId":"4"}],"length":"5"}'
)


def request(**overrides: Any) -> str:
    """A valid 4-case request as JSON text, with fields overridden (None removes a field)."""
    data: dict[str, Any] = {"requestId": "req-1", "requests": [{"caseId": str(i)} for i in range(4)]}
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data)


REJECTIONS: list[tuple[str | bytes | dict[str, Any], str]] = [
    # not JSON / not an object
    ("{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('"a string"', "must be a JSON object, got str"),
    ("null", "must be a JSON object, got NoneType"),
    # requestId
    (request(requestId=None), "no requestId"),
    (request(requestId=""), "no requestId"),
    (request(requestId=["a"]), "requestId must be a string, got list"),
    (request(requestId=1.5), "requestId must be a string, got float"),
    (request(requestId=True), "requestId must be a string, got bool"),
    (request(requestId="x" * (c.MAX_REQUEST_ID_LENGTH + 1)),
     f"requestId is {c.MAX_REQUEST_ID_LENGTH + 1} characters; the limit is {c.MAX_REQUEST_ID_LENGTH}"),
    (request(requestId="\U0001d11e" * 241), f"requestId is 964 bytes in UTF-8; the limit is {c.MAX_REQUEST_ID_BYTES}"),
    ('{"requestId": "a\\ud800", "requests": [{"caseId": "0"}]}', "requestId is not valid Unicode"),
    # the cases array
    (request(requests=None), "no 'requests' array"),
    (request(requests={"caseId": "0"}), "'requests' must be an array, got dict"),
    (request(requests="0,1,2"), "'requests' must be an array, got str"),
    (request(requests=[]), "'requests' is empty"),
    (request(requests=[{"caseId": "0"}, "1"]), "requests[1] must be an object with a caseId"),
    (request(requests=[["0"]]), "requests[0] must be an object with a caseId"),
    # caseId
    (request(requests=[{"caseId": "0"}, {"id": "1"}]),
     "requests[1].caseId must be a non-empty string; the case has none"),
    (request(requests=[{"caseId": ""}]), "requests[0].caseId must be a non-empty string, got an empty string"),
    (request(requests=[{"caseId": 0}]), "requests[0].caseId must be a non-empty string, got the number 0"),
    (request(requests=[{"caseId": 7.5}]), "requests[0].caseId must be a non-empty string, got the number 7.5"),
    (request(requests=[{"caseId": None}]), "requests[0].caseId must be a non-empty string, got null"),
    (request(requests=[{"caseId": True}]), "requests[0].caseId must be a non-empty string, got the boolean true"),
    (request(requests=[{"caseId": ["0"]}]), "requests[0].caseId must be a non-empty string, got an array"),
    (
        request(requests=[{"caseId": "0"}, {"caseId": "y" * (c.MAX_CASE_ID_LENGTH + 1)}]),
        f"requests[1].caseId is longer than {c.MAX_CASE_ID_LENGTH} characters",
    ),
    (
        request(requests=[{"caseId": "a"}, {"caseId": "b"}, {"caseId": "c"}, {"caseId": "b"}]),
        "duplicate caseId 'b' at requests[1] and requests[3]",
    ),
    # length
    (request(length="5"), "length says 5 but 'requests' has 4 cases"),
    (request(length=3), "length says 3 but 'requests' has 4 cases"),
    (request(length="0"), "length says 0 but 'requests' has 4 cases"),
    (request(length="four"), "length must be a whole number"),
    (request(length="-4"), "length must be a whole number"),
    (request(length=4.0), "length must be a whole number"),
    (request(length=[4]), "length must be a whole number"),
    (request(length=True), "length must be a whole number, got True"),
    # deadlineSeconds
    (request(deadlineSeconds=0), "deadlineSeconds must be a number of seconds between 1 and"),
    (request(deadlineSeconds=-30), "deadlineSeconds must be a number of seconds between 1 and"),
    (request(deadlineSeconds="600"), "deadlineSeconds must be a number of seconds between 1 and"),
    (request(deadlineSeconds=True), "deadlineSeconds must be a number of seconds between 1 and"),
]


@pytest.mark.parametrize(("raw", "fragment"), REJECTIONS)
def test_rejection_names_the_problem(raw: str | bytes | dict[str, Any], fragment: str) -> None:
    # GIVEN a bad request  WHEN it is parsed  THEN RequestError names the problem
    with pytest.raises(RequestError) as info:
        parse_request(raw)
    assert fragment in str(info.value)


def test_request_error_is_a_value_error() -> None:
    # GIVEN callers that catch ValueError  THEN RequestError is one
    assert issubclass(RequestError, ValueError)


def test_too_many_cases() -> None:
    # GIVEN one case more than MAX_CASES (as a dict, so the byte limit is not what fires)
    data = {"requestId": "big", "requests": [{"caseId": str(i)} for i in range(c.MAX_CASES + 1)]}
    # WHEN parsed  THEN the count and the limit are named
    with pytest.raises(RequestError, match=rf"has {c.MAX_CASES + 1} cases; the limit is {c.MAX_CASES}"):
        parse_request(data)


def test_exactly_max_cases_is_accepted() -> None:
    # GIVEN exactly MAX_CASES cases  WHEN parsed  THEN accepted
    data = {"requestId": "big", "requests": [{"caseId": str(i)} for i in range(c.MAX_CASES)]}
    assert parse_request(data).length == c.MAX_CASES


def test_a_request_over_the_inline_limit_is_valid_and_travels_by_reference() -> None:
    # GIVEN 20 cases of 20 KB: 400 KB, over what travels inline as the PreProcess input
    raw = json.dumps({"requestId": "big", "requests": [{"caseId": str(i), "pad": "p" * 20_000} for i in range(20)]})
    parsed = parse_request(raw)
    # THEN it is valid, and is stored in S3 (PreProcess gets a reference), unlike a small request
    assert parsed.input_bytes() > c.MAX_REQUEST_BYTES and not parsed.fits_inline()
    assert parse_request(SEED).fits_inline()


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_request_over_the_referenced_limit_is_rejected_naming_it(
        as_bytes: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a referenced-request limit of 100 KB (256 MiB deployed) and a request of 200 KB
    monkeypatch.setattr(c, "MAX_REFERENCED_REQUEST_BYTES", 100_000)
    raw = json.dumps({"requestId": "huge", "requests": [{"caseId": str(i), "pad": "p" * 20_000} for i in range(10)]})
    # WHEN parsed  THEN rejected for its size as it would be stored (minified), the limit named
    with pytest.raises(RequestError) as info:
        parse_request(raw.encode() if as_bytes else raw)
    sent = len(json.dumps({**json.loads(raw), "length": "10"}, separators=(",", ":")).encode())
    assert str(info.value).startswith(f"request is {sent} bytes as sent; the limit is 100000 bytes")
    assert "Split it" in str(info.value)


def test_a_case_over_the_case_limit_is_rejected_naming_the_put_events_limit() -> None:
    # GIVEN a small request whose second case is 30 KB
    raw = json.dumps({"requestId": "r", "requests": [{"caseId": "0"}, {"caseId": "1", "pad": "p" * 30_000}]})
    # THEN rejected, naming the case, its size and why a case is limited (ten per PutEvents call)
    size = len(json.dumps({"caseId": "1", "pad": "p" * 30_000}, separators=(",", ":")).encode())
    with pytest.raises(RequestError, match=rf"^requests\[1\] is {size} bytes as JSON; a case may be at most "
                                           rf"{c.MAX_CASE_BYTES} bytes.*PutEvents"):
        parse_request(raw)


def test_size_is_counted_in_bytes_not_characters() -> None:
    # GIVEN a case under the case limit in characters but over it in UTF-8 bytes
    pad = "é" * (c.MAX_CASE_BYTES // 2 + 100)
    raw = json.dumps({"requestId": "r", "requests": [{"caseId": "0", "pad": pad}]}, ensure_ascii=False)
    assert len(raw) < c.MAX_CASE_BYTES < len(raw.encode())
    # WHEN parsed  THEN rejected for its size
    with pytest.raises(RequestError, match="a case may be at most"):
        parse_request(raw)


def test_the_size_checked_is_the_minified_input_that_is_sent() -> None:
    # GIVEN 2,000 cases written with spaces: over the limit as written, under it minified
    cases = [{"caseId": f"case-{i:05d}", "payload": "x" * 55, "note": "y" * 16} for i in range(2_000)]
    written = json.dumps({"requestId": "spaced", "requests": cases}, indent=2)
    minified = json.dumps({"requestId": "spaced", "requests": cases, "length": "2000"}, separators=(",", ":"))
    assert len(minified.encode()) < c.MAX_REQUEST_BYTES < len(written.encode())
    # WHEN parsed  THEN accepted, and the input it sends is minified and within the limit
    parsed = parse_request(written)
    sent = parsed.to_input_json()
    assert sent == minified
    assert len(sent.encode()) <= c.MAX_REQUEST_BYTES


def test_a_request_under_the_limit_as_written_but_over_it_as_sent_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN minified text without "length", 5 bytes under the limit (lowered to 50 KB here): the
    # request as stored carries "length" too, and is over it
    monkeypatch.setattr(c, "MAX_REFERENCED_REQUEST_BYTES", 50_000)

    def text(pad: int) -> str:
        return json.dumps({"requestId": "r", "requests": [{"caseId": str(i), "pad": "p" * pad} for i in range(5)]},
                          separators=(",", ":"))
    base = len(text(0))
    raw = text((50_000 - 5 - base) // 5)
    gap = 50_000 - len(raw.encode())
    assert 5 <= gap < 10
    sent = len(raw.encode()) + len(',"length":"5"')
    assert sent > 50_000
    # WHEN parsed  THEN refused, for the size it would be sent at
    with pytest.raises(RequestError, match=f"is {sent} bytes as sent"):
        parse_request(raw)


# --- accepted requests ---------------------------------------------------------------------


def test_seed_format_with_string_length() -> None:
    # GIVEN the seed's compact file, "length" as a string  WHEN parsed
    parsed = parse_request(SEED)
    # THEN the request and its cases are taken as they are
    assert isinstance(parsed, FanRequest)
    assert parsed.request_id == "123456"
    assert parsed.length == 5
    assert parsed.case_ids == ["0", "1", "2", "3", "4"]
    # AND without a deadlineSeconds it names none: the deployed stack's default applies
    assert parsed.deadline_seconds is None
    assert "deadlineSeconds" not in parsed.to_input()


def test_missing_length_is_computed() -> None:
    # GIVEN no length  WHEN parsed  THEN the length is the number of cases
    parsed = parse_request(request(length=None))
    assert parsed.length == 4
    assert parsed.to_input()["length"] == "4"


@pytest.mark.parametrize("length", [4, "4", " 4 "])
def test_integer_or_string_length_that_agrees(length: int | str) -> None:
    # GIVEN a length, as a number or a string, that agrees with the cases  THEN accepted
    assert parse_request(request(length=length)).length == 4


def test_integer_request_id_becomes_a_string() -> None:
    # GIVEN the seed's id written as a number  WHEN parsed  THEN it is the string form
    assert parse_request(request(requestId=123456)).request_id == "123456"


def test_dict_input_is_accepted() -> None:
    # GIVEN the already-decoded execution input (what Prepare receives)  THEN it parses
    assert parse_request(json.loads(SEED)).case_ids == ["0", "1", "2", "3", "4"]


def test_max_length_ids_are_accepted() -> None:
    # GIVEN a requestId and a caseId at their maximum lengths  THEN accepted
    rid, cid = "r" * c.MAX_REQUEST_ID_LENGTH, "c" * c.MAX_CASE_ID_LENGTH
    parsed = parse_request({"requestId": rid, "requests": [{"caseId": cid}]})
    assert parsed.request_id == rid and parsed.case_ids == [cid]


def test_deadline_seconds_default_and_explicit() -> None:
    # GIVEN no deadlineSeconds but a default from the caller  THEN the default applies
    assert parse_request(request(), default_deadline=42).deadline_seconds == 42
    # GIVEN an explicit deadline  THEN it wins over the default
    assert parse_request(request(deadlineSeconds=90), default_deadline=42).deadline_seconds == 90
    # GIVEN a fractional deadline  THEN it becomes whole seconds
    assert parse_request(request(deadlineSeconds=90.7)).deadline_seconds == 90


def test_to_input_keeps_order_and_extra_fields_and_stringifies_length() -> None:
    # GIVEN cases out of natural order carrying fields of their own
    cases = [
        {"caseId": "b", "computeSeconds": 0.5},
        {"caseId": "a", "payload": {"x": [1, 2]}},
        {"caseId": "10"},
        {"caseId": "2", "note": "keep me"},
    ]
    raw = json.dumps({"requestId": "ordered", "requests": cases, "length": 4, "deadlineSeconds": 120})
    # WHEN parsed and turned back into the PreProcess input
    out = parse_request(raw).to_input()
    # THEN length is a string, case order and extra fields are kept
    assert out == {"requestId": "ordered", "requests": cases, "length": "4", "deadlineSeconds": 120}
    assert isinstance(out["length"], str)
    # AND the input round-trips through the parser unchanged
    assert parse_request(json.dumps(out)).to_input() == out


# --- inputs that once slipped through validation ---


# --- requestIds are the caller's business keys; execution names are derived from them ---

# StartExecution's name rules: 1-80 characters, none of whitespace, brackets, wildcards, the
# listed special characters or control characters (and, for CloudWatch Logs, only these).
VALID_EXECUTION_NAME = r"[A-Za-z0-9_-]{1,80}"
BUSINESS_KEYS = ["order 42/2026 #a", "x" * 120, "注文-2026/07", "abc\n", "  ", "a" * c.MAX_REQUEST_ID_LENGTH,
                 "123456", "<{[?*]}>", "\U0001d11e" * 240]


@pytest.mark.parametrize("request_id", BUSINESS_KEYS)
def test_any_text_up_to_the_limit_is_a_request_id_and_names_a_valid_execution(request_id: str) -> None:
    # GIVEN a requestId of any characters, up to 256 of them  WHEN the request is parsed
    parsed = parse_request(request(requestId=request_id))
    # THEN it is kept as given, and its execution name is a valid StartExecution name
    assert parsed.request_id == request_id
    assert re.fullmatch(VALID_EXECUTION_NAME, parsed.execution_name)


def test_execution_names_keep_a_readable_prefix_and_are_one_per_request_id() -> None:
    # GIVEN requestIds that differ only in characters an execution name cannot hold
    names = {rid: execution_name(rid) for rid in ("order 42/2026 #a", "order 42/2026 #b", "order-42-2026-a",
                                                  "order 42 2026 a")}
    # THEN each keeps the readable part, and no two share a name
    assert all(name.startswith("order-42-2026-") for name in names.values())
    assert len(set(names.values())) == len(names)
    # AND the same requestId always gives the same name (what makes a second start fail)
    assert execution_name("order 42/2026 #a") == names["order 42/2026 #a"]
    # AND a long requestId is cut to fit, its digest kept
    assert len(execution_name("x" * 256)) == 80 and execution_name("x" * 256) != execution_name("x" * 255)


def test_superscript_length_is_a_request_error() -> None:
    # GIVEN a length of '²'  THEN it is a RequestError, not a bare ValueError from int()
    with pytest.raises(RequestError):
        parse_request(request(length="²"))


def test_infinite_deadline_is_a_request_error() -> None:
    # GIVEN deadlineSeconds Infinity (json.loads accepts it)  THEN it is a RequestError
    with pytest.raises(RequestError):
        parse_request('{"requestId": "r", "requests": [{"caseId": "0"}], "deadlineSeconds": Infinity}')


def test_bytes_that_are_not_utf8_are_a_request_error() -> None:
    # GIVEN bytes that are not UTF-8  THEN it is a RequestError ("not valid JSON")
    with pytest.raises(RequestError):
        parse_request(b'{"requestId": "r\xff"}')


def test_nan_deadline_is_rejected() -> None:
    # GIVEN deadlineSeconds NaN (json.loads accepts it)  THEN rejected
    with pytest.raises(RequestError):
        parse_request('{"requestId": "r", "requests": [{"caseId": "0"}], "deadlineSeconds": NaN}')


def test_deadline_beyond_a_year_is_rejected() -> None:
    # GIVEN a deadline longer than a Standard execution may run  THEN rejected up front
    with pytest.raises(RequestError, match="one-year limit"):
        parse_request(request(deadlineSeconds=c.MAX_DEADLINE_SECONDS + 1))
    assert parse_request(request(deadlineSeconds=c.MAX_DEADLINE_SECONDS)).deadline_seconds == c.MAX_DEADLINE_SECONDS
    assert c.MAX_DEADLINE_SECONDS < c.STANDARD_EXECUTION_MAX_SECONDS


def test_deadline_beyond_the_retention_is_rejected() -> None:
    # GIVEN a stack keeping records 7 days after the deadline (Prepare passes its bound)
    bound = c.max_deadline_seconds(7 * 86_400)
    assert bound == 7 * 86_400 - c.CLOSE_MARGIN_SECONDS
    # WHEN a request asks for more  THEN rejected, naming the bound
    with pytest.raises(RequestError, match=f"between 1 and {bound}"):
        parse_request(request(deadlineSeconds=bound + 1), max_deadline=bound)
    assert parse_request(request(deadlineSeconds=bound), max_deadline=bound).deadline_seconds == bound


@pytest.mark.parametrize(("cases", "concurrency", "expected"), [
    (1, 1000, 3 * 60 + 300),  # one wave: three compute timeouts plus slack, the old default
    (1000, 1000, 3 * 60 + 300),
    (1001, 1000, 2 * 3 * 60 + 300),
    (10_000, 1000, 10 * 3 * 60 + 300),  # 10 waves of 60 s cases at 1,000 concurrency: at least 600 s
    (10_000, 200, 50 * 3 * 60 + 300),
])
def test_default_deadline_grows_with_the_waves_of_the_request(cases: int, concurrency: int, expected: int) -> None:
    # GIVEN a request size and the compute concurrency  THEN the default deadline covers every wave
    assert default_deadline_seconds(cases, concurrency=concurrency) == expected
    assert default_deadline_seconds(cases, concurrency=concurrency) >= (
        -(-cases // concurrency)) * c.COMPUTE_TIMEOUT_SECONDS


def test_a_run_s_compute_seconds_goes_on_every_case_without_its_own() -> None:
    # GIVEN a request where one case sets its own simulated work
    parsed = parse_request({"requestId": "r", "requests": [{"caseId": "0"}, {"caseId": "1", "computeSeconds": 7}]})
    # WHEN a run's value is applied  THEN the other cases carry it, the case's own value wins
    with_run = parsed.with_compute_seconds(0.5)
    assert [case.get("computeSeconds") for case in with_run.cases] == [0.5, 7]
    assert parsed.cases[0] == {"caseId": "0"}  # the original request is unchanged
    assert parse_request(with_run.to_input()).cases == with_run.cases  # and it still validates


def test_a_run_s_compute_seconds_that_no_longer_fits_is_refused_with_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a request just under the size limit (lowered to 1 MB here: 256 MiB deployed)
    monkeypatch.setattr(c, "MAX_REFERENCED_REQUEST_BYTES", 1_000_000)
    big = parse_request({"requestId": "big", "requests": [{"caseId": str(i)} for i in range(50_000)]})
    assert big.input_bytes() < 1_000_000
    # WHEN every case carries computeSeconds  THEN it no longer fits, and the size and limit are named
    with pytest.raises(RequestError, match=r"request is \d+ bytes as sent; the limit is 1000000 bytes"):
        big.with_compute_seconds(0.5)
