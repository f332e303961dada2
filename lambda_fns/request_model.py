"""Validation and normalisation of a fan-out request, shared by the CLI (which rejects a
bad request before anything is written) and the Prepare function (which guards direct
StartExecution calls). A request travels inline, as the PreProcess input in the seed's
format, up to MAX_REQUEST_BYTES; a larger one (up to MAX_CASES cases and
MAX_REFERENCED_REQUEST_BYTES) is stored in S3 and PreProcess gets a reference to it:
`{"requestId": ..., "requestRef": "s3://bucket/key"}`."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from . import constants as c

# What an execution name keeps of a requestId: the characters CloudWatch Logs accepts in
# one (StartExecution allows more, but not whitespace, brackets, wildcards, most
# punctuation or control characters); every other run of characters becomes one '-'.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NAME_DIGEST_CHARS = 16  # 64 bits of SHA-256: distinct requestIds never share a name in practice


class RequestError(ValueError):
    """A request that fanflow will not start; the message names the problem."""


def execution_name(request_id: str, restart: int = 0, *, attempt: int = 1) -> str:
    """The PreProcess execution name of a request: a readable prefix of the requestId's
    letters, digits, '-' and '_', then a digest of the whole requestId; always a valid
    StartExecution name (1-80 characters). The same requestId always gives the same name,
    which is what makes a second start of a request fail (ExecutionAlreadyExists). A restart
    (the request's earlier execution ended before it opened the request) adds `.N`, which no
    first name has; a redrive's attempt adds `.rN` (so two redrives of one attempt cannot both start)."""
    suffix = (f".r{attempt}" if attempt > 1 else "") + (f".{restart}" if restart else "")
    digest = hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:_NAME_DIGEST_CHARS]
    room = c.SFN_MAX_NAME_LENGTH - _NAME_DIGEST_CHARS - 1 - len(suffix)
    readable = _NAME_UNSAFE.sub("-", request_id).strip("-")[:room]
    return (f"{readable.rstrip('-')}-{digest}" if readable else digest) + suffix


def describe(value: Any) -> str:
    """What a JSON value is, for a message: 'the number 0', 'an empty string', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value else f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class FanRequest:
    request_id: str
    cases: tuple[dict[str, Any], ...]
    deadline_seconds: int | None  # None: the deployed stack's default applies (see Prepare)

    @property
    def length(self) -> int:
        return len(self.cases)

    @property
    def case_ids(self) -> list[str]:
        return [case[c.ATTR_CASE_ID] for case in self.cases]

    def to_input(self) -> dict[str, Any]:
        """The PreProcess execution input, in the seed's format (length as a string)."""
        out: dict[str, Any] = {"requestId": self.request_id, "requests": list(self.cases), "length": str(self.length)}
        if self.deadline_seconds is not None:
            out["deadlineSeconds"] = self.deadline_seconds
        return out

    def to_input_json(self) -> str:
        """The execution input exactly as it is sent: minified JSON (what the size limit measures)."""
        return encode_input(self.to_input())

    @property
    def execution_name(self) -> str:
        return execution_name(self.request_id)

    def input_bytes(self) -> int:
        """The size of the request in the seed's format, minified (what the size limits measure)."""
        return len(self.to_input_json().encode())

    def fits_inline(self) -> bool:
        """Whether the request travels as the PreProcess input itself; else it is stored in S3
        and PreProcess gets a reference to it (reference_input)."""
        return self.input_bytes() <= c.MAX_REQUEST_BYTES

    def with_compute_seconds(self, seconds: float) -> FanRequest:
        """The request with `computeSeconds` set on every case that has none (a case's own
        value wins), so that a run's simulated work travels with its cases; RequestError
        when the cases no longer fit in an execution input."""
        cases = tuple(case if c.ATTR_COMPUTE_SECONDS in case else {**case, c.ATTR_COMPUTE_SECONDS: seconds}
                      for case in self.cases)
        request = replace(self, cases=cases)
        size = request.input_bytes()
        if size > c.MAX_REFERENCED_REQUEST_BYTES:
            raise _too_large(size)
        for index, case in enumerate(cases):
            _check_case_size(index, case)
        return request


def reference_input(request_id: str, uri: str) -> dict[str, Any]:
    """The PreProcess input of a request stored in S3 (the documented by-reference input)."""
    return {"requestId": request_id, c.INPUT_REQUEST_REF: uri}


@dataclass(frozen=True)
class RequestRef:
    """Where a stored request is: an S3 bucket and key."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: Any) -> RequestRef:
    """`s3://bucket/key` as a RequestRef; RequestError naming what is wrong."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise RequestError(f"{c.INPUT_REQUEST_REF} must be an S3 URI, s3://bucket/key; got {describe(uri)}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not _BUCKET_NAME.fullmatch(bucket) or not key:
        raise RequestError(f"{c.INPUT_REQUEST_REF} {uri!r} is not s3://bucket/key with a valid bucket name and a key")
    return RequestRef(bucket=bucket, key=key)


def parse_reference_input(data: dict[str, Any]) -> tuple[RequestRef, str | None]:
    """A by-reference PreProcess input: where the request is, and the requestId it names (None
    when it names none). RequestError when it mixes a reference with an inline request."""
    extra = sorted(set(data) - {c.INPUT_REQUEST_REF, "requestId"})
    if extra:
        raise RequestError(f"a request by reference ({c.INPUT_REQUEST_REF}) holds only requestId besides it; "
                           f"this input also has {', '.join(repr(name) for name in extra)}")
    request_id = data.get("requestId")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"requestId must be a string, got {type(request_id).__name__}")
    return parse_s3_uri(data[c.INPUT_REQUEST_REF]), request_id


# S3 bucket naming rules (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html):
# 3-63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _check_case_size(index: int, case: dict[str, Any]) -> None:
    size = len(_ENCODER.encode(case).encode())
    if size > c.MAX_CASE_BYTES:
        raise RequestError(f"requests[{index}] is {size} bytes as JSON; a case may be at most {c.MAX_CASE_BYTES} "
                           "bytes, because ten cases travel in one EventBridge PutEvents call (256 KB)")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_input(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def default_deadline_seconds(cases: int, *, concurrency: int,
                             compute_timeout: int = c.COMPUTE_TIMEOUT_SECONDS) -> int:
    """The deadline of a request that names none: every case may take COMPUTE_ATTEMPTS compute
    timeouts (Lambda's asynchronous retries), and at most `concurrency` cases run at once, so
    the cases run in ceil(cases / concurrency) waves; plus room for queueing and the fan-out."""
    waves = math.ceil(max(1, cases) / max(1, concurrency))
    return waves * c.COMPUTE_ATTEMPTS * compute_timeout + c.DEADLINE_SLACK_SECONDS


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim_slots(deadline: int) -> list[dict[str, str]]:
    """When PreProcess tries to claim the request (or a redrive's attempt) for its deadline
    Summary: at the deadline, then every CLAIM_RETRY_SECONDS. At a slot, a claim made before
    `staleBefore` is stale (its Summary has run its retries out); `at` is what the claim records,
    a lower bound of the time then."""
    slots = []
    for attempt in range(c.CLAIM_ATTEMPTS):
        at = deadline + attempt * c.CLAIM_RETRY_SECONDS
        slots.append({"at": str(at), "atIso": iso(at), "staleBefore": str(at - c.STALE_CLAIM_SECONDS)})
    return slots


# Far more than any request that can be sent (pretty-printed): a bigger text is not even parsed.
MAX_TEXT_BYTES = 2 * c.MAX_REFERENCED_REQUEST_BYTES


def parse_request(raw: str | bytes | dict[str, Any], *, default_deadline: int | None = None,
                  max_deadline: int = c.MAX_DEADLINE_SECONDS) -> FanRequest:
    """Parse and validate a request; raise RequestError naming the first problem. Without a
    `default_deadline`, a request that names no deadlineSeconds keeps none (the stack decides)."""
    if isinstance(raw, (str, bytes)):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_TEXT_BYTES:
            raise _too_large(size)
        try:
            data = json.loads(raw)
        except UnicodeDecodeError as exc:
            raise RequestError(f"request is not valid JSON: it is not UTF-8 text ({exc.reason}: byte "
                               f"0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise RequestError(f"request is not valid JSON: {exc}") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise RequestError(f"request must be a JSON object, got {type(data).__name__}")

    request_id = data.get("requestId")
    if request_id is None or request_id == "":
        raise RequestError("request has no requestId")
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        request_id = str(request_id)
    if not isinstance(request_id, str):
        raise RequestError(f"requestId must be a string, got {type(request_id).__name__}")
    check_request_id(request_id)

    if "requests" not in data:
        raise RequestError("request has no 'requests' array")
    cases = data["requests"]
    if not isinstance(cases, list):
        raise RequestError(f"'requests' must be an array, got {type(cases).__name__}")
    if not cases:
        raise RequestError("'requests' is empty: a request needs at least one case")
    if len(cases) > c.MAX_CASES:
        raise RequestError(f"'requests' has {len(cases)} cases; the limit is {c.MAX_CASES}")

    seen: dict[str, int] = {}
    for index, case in enumerate(cases):
        if not isinstance(case, dict):
            raise RequestError(f"requests[{index}] must be an object with a caseId")
        if c.ATTR_CASE_ID not in case:
            raise RequestError(f"requests[{index}].caseId must be a non-empty string; the case has none")
        case_id = case[c.ATTR_CASE_ID]
        if not isinstance(case_id, str) or not case_id:
            raise RequestError(f"requests[{index}].caseId must be a non-empty string, got {describe(case_id)}")
        if len(case_id) > c.MAX_CASE_ID_LENGTH:
            raise RequestError(
                f"requests[{index}].caseId is longer than {c.MAX_CASE_ID_LENGTH} characters"
            )
        if case_id in seen:
            raise RequestError(
                f"duplicate caseId {case_id!r} at requests[{seen[case_id]}] and requests[{index}]"
            )
        seen[case_id] = index
        compute_type = case.get(c.ATTR_COMPUTE_TYPE)
        if c.ATTR_COMPUTE_TYPE in case and compute_type not in c.COMPUTE_TYPES:
            raise RequestError(
                f"requests[{index}].computeType {compute_type!r} is not a known compute type; "
                f"known: {', '.join(c.COMPUTE_TYPES)} (or none, for {c.DEFAULT_COMPUTE_TYPE!r})"
            )

    if data.get("length") is not None:
        declared = _parse_length(data["length"])
        if declared != len(cases):
            raise RequestError(
                f"length says {declared} but 'requests' has {len(cases)} cases"
            )

    deadline = data.get("deadlineSeconds", default_deadline)
    if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline)
            or not 0 < deadline <= max_deadline):
        raise RequestError(
            f"deadlineSeconds must be a number of seconds between 1 and {max_deadline}: every record of a "
            "request is kept for the retention after its deadline, and a request must close within the "
            "retention and within a Standard workflow's one-year limit"
        )

    request = FanRequest(request_id=request_id, cases=tuple(cases),
                         deadline_seconds=None if deadline is None else int(max(1, deadline)))
    # The size that counts is the request as it is sent (minified), not the caller's text.
    size = len(request.to_input_json().encode())
    if size > c.MAX_REFERENCED_REQUEST_BYTES:
        raise _too_large(size)
    if size > c.MAX_CASE_BYTES:  # else no case can be larger
        for index, case in enumerate(cases):
            _check_case_size(index, case)
    return request


def _too_large(size: int) -> RequestError:
    return RequestError(
        f"request is {size} bytes as sent; the limit is {c.MAX_REFERENCED_REQUEST_BYTES} bytes (a request over "
        f"{c.MAX_REQUEST_BYTES} bytes is stored in S3 and read whole by PreProcess). Split it into several requests."
    )


def check_request_id(request_id: str) -> None:
    """A requestId is any text of 1 to MAX_REQUEST_ID_LENGTH characters (at most
    MAX_REQUEST_ID_BYTES in UTF-8); RequestError otherwise."""
    if not request_id:
        raise RequestError("requestId must not be empty")
    if len(request_id) > c.MAX_REQUEST_ID_LENGTH:
        raise RequestError(f"requestId is {len(request_id)} characters; the limit is {c.MAX_REQUEST_ID_LENGTH}")
    try:
        size = len(request_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise RequestError("requestId is not valid Unicode (it holds an unpaired surrogate)") from None
    if size > c.MAX_REQUEST_ID_BYTES:
        raise RequestError(f"requestId is {size} bytes in UTF-8; the limit is {c.MAX_REQUEST_ID_BYTES} "
                           "(it names the request's objects in S3, whose keys are limited to 1,024 bytes)")


def _parse_length(value: Any) -> int:
    if isinstance(value, bool):
        raise RequestError(f"length must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        return int(value.strip())
    raise RequestError(f"length must be a whole number (as in \"length\": \"100\"), got {value!r}")
