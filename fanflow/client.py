"""Talks to a deployed fanflow stack through boto3 only (the same code path serves every
target): start a request, follow its counter row, read its summary."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lambda_fns import constants as c
from lambda_fns import keys
from lambda_fns.request_model import (
    MAX_TEXT_BYTES,
    FanRequest,
    RequestError,
    encode_input,
    execution_name,
    parse_request,
    parse_s3_uri,
    reference_input,
)
from lambda_fns.support import plain_item

from .errors import RequestFailed, RequestNotFound, UsageError

# Another execution name for a request whose earlier PreProcess execution ended before opening it.
EXECUTION_NAME_RETRIES = 3
SUMMARY_STORE_WAIT_SECONDS = 10.0


# How often the client polls a lifecycle execution (Cancel, or a redrive's start).
LIFECYCLE_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Redrive:
    """A redrive started: the attempt it makes and the PreProcess execution that runs it."""

    request_id: str
    attempt: int
    execution_arn: str


@dataclass(frozen=True)
class Progress:
    request_id: str
    status: str
    completed: int
    target: int
    succeeded: int
    failed: int
    attempt: int = 1
    redriving: bool = False  # a redrive has taken the attempt but not opened it yet


class FanflowClient:
    """`where` names the target in messages ("the embedded endpoint at http://...")."""

    def __init__(self, client_factory: Callable[[str], Any], outputs: dict[str, str], *,
                 where: str = "this target") -> None:
        missing = [key for key in (c.OUTPUT_PREPROCESS_ARN, c.OUTPUT_COUNTER_TABLE, c.OUTPUT_ARTIFACTS_BUCKET)
                   if key not in outputs]
        if missing:
            raise RequestFailed(f"the {c.STACK_NAME} stack has no output(s) {', '.join(missing)}: is it deployed?")
        self.outputs = outputs
        self.where = where
        self._sfn = client_factory("stepfunctions")
        self._ddb = client_factory("dynamodb")
        self._s3 = client_factory("s3")
        self._started: dict[str, str] = {}  # requestId -> the execution this client started for it

    def counter_row(self, request_id: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(
            TableName=self.outputs[c.OUTPUT_COUNTER_TABLE],
            Key={c.ATTR_REQUEST_ID: {"S": request_id}},
            ConsistentRead=True,
        ).get("Item")
        return plain_item(item) if item else None

    def execution_arn(self, request_id: str) -> str:
        """The request's PreProcess execution: the one this client started, else the one named after it."""
        return self._started.get(request_id) or self._execution_arn_of(execution_name(request_id))

    def read_request(self, uri: str) -> FanRequest:
        """The request stored at s3://bucket/key, validated; RequestError when it cannot be read
        or is not valid (nothing is written)."""
        ref = parse_s3_uri(uri)
        try:
            response = self._s3.get_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            raise RequestError(f"cannot read {uri}: {exc.response['Error']['Code']}") from None
        if int(response.get("ContentLength", 0)) > MAX_TEXT_BYTES:
            raise RequestError(f"{uri} is {response['ContentLength']} bytes; the limit is {MAX_TEXT_BYTES}")
        return parse_request(response["Body"].read())

    def start(self, request: FanRequest, *, stored_at: str | None = None) -> str:
        """Start PreProcess for a validated request; refuse a requestId that exists. A request
        that fits in an execution input travels inline, minified, as validated
        (FanRequest.to_input_json); a larger one is stored in the artifacts bucket first, and
        PreProcess gets a reference to it. `stored_at`: the request is in S3 there already
        (`fanflow run s3://...`), and PreProcess reads it from there."""
        existing = self.counter_row(request.request_id)
        if existing is not None:
            raise RequestFailed(
                f"request {request.request_id!r} already exists on {self.where} (status "
                f"{existing.get(c.ATTR_STATUS)}); it was left unchanged. Use a new requestId (--request-id)."
            )
        if stored_at is None and not request.fits_inline():
            stored_at = self.store_request(request)
        execution_input = (request.to_input_json() if stored_at is None
                           else encode_input(reference_input(request.request_id, stored_at)))
        name = request.execution_name  # one PreProcess execution per request id
        for retry in range(1, EXECUTION_NAME_RETRIES + 1):
            try:
                response = self._sfn.start_execution(stateMachineArn=self.outputs[c.OUTPUT_PREPROCESS_ARN],
                                                      name=name, input=execution_input)
                self._started[request.request_id] = str(response["executionArn"])
                return self._started[request.request_id]
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                    raise
            name = self._name_after_failed_start(request.request_id, name, retry)
        raise RequestFailed(f"request {request.request_id!r} could not be started: its PreProcess executions "
                            f"ended {EXECUTION_NAME_RETRIES} times before the request was opened. Use a new requestId.")

    def cancel(self, request_id: str, *, timeout: float = 900.0) -> dict[str, Any]:
        """Cancel a running request through the Cancel workflow and wait for its close; the
        closed counter row. RequestNotFound for an unknown request, UsageError for one that is
        not running (with its status)."""
        arn = self.outputs.get(c.OUTPUT_CANCEL_ARN)
        if not arn:
            raise RequestFailed(f"the {c.STACK_NAME} stack on {self.where} has no Cancel workflow (output "
                                f"{c.OUTPUT_CANCEL_ARN}): it was deployed by an earlier fanflow; deploy it again")
        row = self.counter_row(request_id)
        if row is None:
            raise RequestNotFound(f"no request {request_id!r} on {self.where}; `fanflow list` shows the requests "
                                  "there are")
        if row[c.ATTR_STATUS] in c.FINAL_STATUSES:
            raise UsageError(f"request {request_id!r} has finished ({row[c.ATTR_STATUS]}); only a running request "
                             "can be cancelled")
        execution = self._sfn.start_execution(stateMachineArn=arn, name=f"cancel-{uuid.uuid4().hex}",
                                              input=json.dumps({"requestId": request_id}))["executionArn"]
        ended = self._await_execution(execution, timeout, f"the cancel of request {request_id!r}")
        if ended["status"] != "SUCCEEDED":
            error, cause = ended.get("error", ""), _error_message(ended.get("cause", ""))
            if error == "RequestNotFound":
                raise RequestNotFound(f"no request {request_id!r} on {self.where}")
            if error == "RequestNotRunning":
                raise UsageError(cause)
            raise RequestFailed(f"the cancel of request {request_id!r} ended {ended['status']}: {error}: {cause}")
        final = self.counter_row(request_id)
        assert final is not None
        return final

    def redrive(self, request_id: str, *, failed: bool = True, timed_out: bool = True,
                deadline_seconds: int | None = None) -> Redrive:
        """Start the next attempt of a closed request: only its failed and/or never-completed
        cases are emitted again, under the same requestId. The request's state is checked here
        first (nothing is started for a request that cannot be redriven) and again, authoritatively,
        by the redrive itself."""
        row = self.counter_row(request_id)
        if row is None:
            raise RequestNotFound(f"no request {request_id!r} on {self.where}; `fanflow list` shows the requests "
                                  "there are")
        status, attempt = row[c.ATTR_STATUS], int(row.get(c.ATTR_ATTEMPT) or 1)
        if status not in c.REDRIVABLE_STATUSES:
            what = ("is still running: wait for it (`fanflow watch`), or cancel it first"
                    if status not in c.FINAL_STATUSES else "succeeded: there is nothing to redrive")
            raise UsageError(f"request {request_id!r} {what} (status {status})")
        if attempt - 1 >= c.MAX_REDRIVES:
            raise UsageError(f"request {request_id!r} has been redriven {attempt - 1} times, the limit "
                             f"({c.MAX_REDRIVES}); start a new request for what is left")
        redrive: dict[str, Any] = {"requestId": request_id, "failed": failed, "timedOut": timed_out}
        if deadline_seconds is not None:
            redrive["deadlineSeconds"] = deadline_seconds
        name = execution_name(request_id, attempt=attempt + 1)
        try:
            response = self._sfn.start_execution(stateMachineArn=self.outputs[c.OUTPUT_PREPROCESS_ARN], name=name,
                                                  input=json.dumps({"redrive": redrive}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            raise UsageError(f"attempt {attempt + 1} of request {request_id!r} has been started already (execution "
                             f"{name!r})") from None
        self._started[request_id] = str(response["executionArn"])
        return Redrive(request_id, attempt + 1, self._started[request_id])

    def _await_execution(self, execution_arn: str, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            execution = dict(self._sfn.describe_execution(executionArn=execution_arn))
            if execution["status"] != "RUNNING":
                return execution
            if time.monotonic() > deadline:
                raise RequestFailed(f"{what} did not end within {timeout:.0f} s (execution {execution_arn})")
            time.sleep(LIFECYCLE_POLL_SECONDS)

    def store_request(self, request: FanRequest) -> str:
        """Store a request in the artifacts bucket (under a fresh key: a re-submission never
        overwrites the request in flight); its S3 URI."""
        bucket = self.outputs[c.OUTPUT_ARTIFACTS_BUCKET]
        key = keys.request_key(request.request_id, uuid.uuid4().hex)
        self._s3.put_object(Bucket=bucket, Key=key, Body=request.to_input_json().encode(),
                            ContentType="application/json")
        return f"s3://{bucket}/{key}"

    def _name_after_failed_start(self, request_id: str, name: str, retry: int) -> str:
        """An execution of this name exists. If it opened the request, or is still running, the
        request is refused; if it ended before opening it (nothing is left of it but its name, which
        Step Functions keeps for 90 days), the request starts under another name: the requestId and
        a '.N' suffix (execution_name's restart), which no first name has."""
        previous = self._sfn.describe_execution(executionArn=self._execution_arn_of(name))
        row = self.counter_row(request_id)
        if row is not None:
            raise RequestFailed(f"request {request_id!r} already exists on {self.where} (status "
                                f"{row.get(c.ATTR_STATUS)}); it was left unchanged. Use a new requestId "
                                "(--request-id).")
        if previous["status"] == "RUNNING":
            raise RequestFailed(f"request {request_id!r} is being started by another client on {self.where} "
                                f"(PreProcess execution {name!r} is running); it was left unchanged.")
        return execution_name(request_id, restart=retry)

    def _execution_arn_of(self, name: str) -> str:
        return self.outputs[c.OUTPUT_PREPROCESS_ARN].replace(":stateMachine:", ":execution:") + f":{name}"

    def progress(self, request_id: str) -> Progress | None:
        row = self.counter_row(request_id)
        if row is None:
            return None
        return Progress(request_id, row[c.ATTR_STATUS], int(row.get(c.ATTR_COUNTER, 0)), int(row[c.ATTR_EXPECTED]),
                        int(row.get(c.ATTR_SUCCEEDED, 0)), int(row.get(c.ATTR_FAILED, 0)),
                        int(row.get(c.ATTR_ATTEMPT) or 1), keys.redrive_opening(row))

    def wait(self, request_id: str, *, execution_arn: str | None = None, timeout: float = 3600.0,
             poll_seconds: float = 0.1, on_progress: Callable[[Progress], None] | None = None,
             attempt: int = 1) -> dict[str, Any]:
        """Wait until the request is closed (in `attempt`, for a redrive); return its final counter row."""
        deadline = time.monotonic() + timeout
        execution_arn = execution_arn or self.execution_arn(request_id)
        while True:
            progress = self.progress(request_id)
            row_attempt = progress.attempt if progress is not None else 0
            if progress is None or (row_attempt < attempt or (progress.redriving and row_attempt == attempt)):
                self._raise_if_preprocess_failed(execution_arn)
            else:
                if on_progress:
                    on_progress(progress)
                if progress.status in c.FINAL_STATUSES:
                    row = self.counter_row(request_id)
                    assert row is not None
                    return row
            if time.monotonic() > deadline:
                raise RequestFailed(f"request {request_id!r} did not finish within {timeout:.0f} s "
                                    f"(last status: {progress.status if progress else 'not started'})")
            time.sleep(poll_seconds)

    def _raise_if_preprocess_failed(self, execution_arn: str) -> None:
        try:
            execution = self._sfn.describe_execution(executionArn=execution_arn)
        except ClientError:
            return  # not visible yet
        if execution["status"] == "FAILED" and execution.get("error") == "InvalidRequest":
            # Prepare refused the request (before writing anything): its message, not Lambda's error record.
            raise RequestError(f"PreProcess refused it: {_error_message(execution.get('cause', ''))}")
        if execution["status"] == "FAILED" and execution.get("error") == "RedriveRefused":
            raise UsageError(f"redrive refused: {_error_message(execution.get('cause', ''))}")
        if execution["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
            raise RequestFailed(f"PreProcess {execution['status']}: {execution.get('error', '')}: "
                                f"{execution.get('cause', '')}")

    def execution(self, request_id: str) -> dict[str, Any] | None:
        """The request's PreProcess execution (describe_execution), None if there is none."""
        try:
            return dict(self._sfn.describe_execution(executionArn=self.execution_arn(request_id)))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ExecutionDoesNotExist", "ResourceNotFound"):
                return None
            raise

    def existing_row(self, request_id: str) -> dict[str, Any] | None:
        """The counter row; None while PreProcess has not written it yet; RequestNotFound when
        neither the row nor a PreProcess execution exists."""
        row = self.counter_row(request_id)
        if row is None and self.execution(request_id) is None:
            raise RequestNotFound(f"no request {request_id!r} on {self.where} (no counter row, no PreProcess "
                                  "execution); `fanflow list` shows the requests there are")
        return row

    def requests(self) -> list[dict[str, Any]]:
        """Every counter row (a Scan: the table holds one small row per request, kept for the
        retention period), without order."""
        names = {f"#{name}": name for name in (c.ATTR_REQUEST_ID, c.ATTR_STATUS, c.ATTR_COUNTER, c.ATTR_EXPECTED,
                                               c.ATTR_SUCCEEDED, c.ATTR_FAILED, c.ATTR_CREATED_AT,
                                               c.ATTR_DEADLINE, c.ATTR_COMPLETED_AT, c.ATTR_SUMMARY_KEY,
                                               c.ATTR_ATTEMPT, c.ATTR_CANCELLED_AT, c.ATTR_REDRIVEN)}
        kwargs: dict[str, Any] = {"TableName": self.outputs[c.OUTPUT_COUNTER_TABLE],
                                  "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        rows: list[dict[str, Any]] = []
        for page in self._ddb.get_paginator("scan").paginate(**kwargs):
            rows.extend(plain_item(item) for item in page["Items"])
        return rows

    def results(self, request_id: str) -> list[dict[str, Any]]:
        """The request's results rows, one per registered case (read shard by shard)."""
        return list(self.iter_results(request_id))

    def iter_results(self, request_id: str) -> Iterator[dict[str, Any]]:
        """The request's results rows, shard by shard (each in caseId order), a page at a time."""
        table = self.outputs.get(c.OUTPUT_RESULTS_TABLE)
        if not table:
            raise RequestFailed(f"the {c.STACK_NAME} stack has no output {c.OUTPUT_RESULTS_TABLE}")
        row = self.counter_row(request_id)
        shards = int(row.get(c.ATTR_SHARDS, 1)) if row else 1
        yield from (plain_item(item) for item in keys.results_items(self._ddb, table, request_id, shards))

    def result_lines(self, summary: dict[str, Any], kind: str = "cases") -> Iterator[dict[str, Any]]:
        """The per-case lines a summary stored beside it: kind "cases" (every case) or
        "notSucceeded"."""
        for body in self._result_parts(summary, kind):
            for line in body.iter_lines():
                if line:
                    yield json.loads(line)

    def download_results(self, summary: dict[str, Any], path: Path) -> int:
        """Write every case's line of a summary to a local JSON Lines file; the number of lines."""
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with path.open("wb") as out:
            for body in self._result_parts(summary, "cases"):
                while block := body.read(1 << 20):
                    count += block.count(b"\n")
                    out.write(block)
        return count

    def _result_parts(self, summary: dict[str, Any], kind: str) -> Iterator[Any]:
        """The bodies (streams) of a summary's per-case parts of one kind, in order."""
        for key in summary.get("results", {}).get(kind, []):
            yield self._s3.get_object(Bucket=self.outputs[c.OUTPUT_ARTIFACTS_BUCKET], Key=key)["Body"]

    def results_uris(self, summary: dict[str, Any], kind: str = "cases") -> list[str]:
        bucket = self.outputs[c.OUTPUT_ARTIFACTS_BUCKET]
        return [f"s3://{bucket}/{key}" for key in summary.get("results", {}).get(kind, [])]

    def execution_history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of an execution's history, oldest first; [] if the execution is unknown."""
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            try:
                page = self._sfn.get_execution_history(**kwargs)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                    return []
                raise
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def find_summary(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The request's summary if Summary has stored it, else None."""
        if not row.get(c.ATTR_SUMMARY_KEY):
            return None
        return self._read_summary(row[c.ATTR_SUMMARY_KEY])

    def summary(self, row: dict[str, Any], *, wait_seconds: float = SUMMARY_STORE_WAIT_SECONDS) -> dict[str, Any]:
        """The summary of a closed request. Summary stores it just after it closes the row, so a
        reader may be a moment early: it waits that long for it."""
        key = row.get(c.ATTR_SUMMARY_KEY)
        if not key:
            raise RequestFailed(f"request {row[c.ATTR_REQUEST_ID]!r} has no summary yet (status {row[c.ATTR_STATUS]})")
        deadline = time.monotonic() + wait_seconds
        while (summary := self._read_summary(key)) is None:
            if time.monotonic() > deadline:
                raise RequestFailed(f"request {row[c.ATTR_REQUEST_ID]!r} is closed ({row[c.ATTR_STATUS]}) but its "
                                    f"summary is not stored yet ({key}); Summary stores it on its next run, at the "
                                    "latest at the request's deadline")
            time.sleep(0.2)
        return summary

    def _read_summary(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self.outputs[c.OUTPUT_ARTIFACTS_BUCKET], Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return dict(json.loads(body))


def _error_message(cause: str) -> str:
    """The errorMessage of a Lambda error record (`{"errorMessage", "errorType", "stackTrace"}`,
    docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html), or the cause as it is."""
    try:
        record = json.loads(cause)
    except ValueError:
        return cause
    message = record.get("errorMessage") if isinstance(record, dict) else None
    return message if isinstance(message, str) and message else cause
