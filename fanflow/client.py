"""Talks to a deployed fanflow stack through boto3 only (the same code path serves every
target): start a request, follow its counter row, read its summary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambda_fns import constants as c
from lambda_fns.request_model import FanRequest, execution_name
from lambda_fns.support import plain_item


class RequestFailed(RuntimeError):
    """The request could not start or did not finish; the message says why."""


class RequestNotFound(RequestFailed):
    """No counter row and no PreProcess execution has this requestId."""


@dataclass(frozen=True)
class Progress:
    request_id: str
    status: str
    completed: int
    target: int
    succeeded: int
    failed: int


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

    def counter_row(self, request_id: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(
            TableName=self.outputs[c.OUTPUT_COUNTER_TABLE],
            Key={c.ATTR_REQUEST_ID: {"S": request_id}},
            ConsistentRead=True,
        ).get("Item")
        return plain_item(item) if item else None

    def execution_arn(self, request_id: str) -> str:
        """The request's PreProcess execution, named after its requestId (execution_name)."""
        arn = self.outputs[c.OUTPUT_PREPROCESS_ARN]
        return arn.replace(":stateMachine:", ":execution:") + f":{execution_name(request_id)}"

    def start(self, request: FanRequest) -> str:
        """Start PreProcess for a validated request; refuse a requestId that exists."""
        existing = self.counter_row(request.request_id)
        if existing is not None:
            raise RequestFailed(
                f"request {request.request_id!r} already exists on {self.where} (status "
                f"{existing.get(c.ATTR_STATUS)}); it was left unchanged. Use a new requestId (--request-id)."
            )
        try:
            response = self._sfn.start_execution(
                stateMachineArn=self.outputs[c.OUTPUT_PREPROCESS_ARN],
                name=request.execution_name,  # one PreProcess execution per request id
                input=json.dumps(request.to_input()),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                raise RequestFailed(
                    f"request {request.request_id!r} was already started on {self.where} with a different "
                    "payload; it was left unchanged. Use a new requestId (--request-id)."
                ) from None
            raise
        return str(response["executionArn"])

    def progress(self, request_id: str) -> Progress | None:
        row = self.counter_row(request_id)
        if row is None:
            return None
        return Progress(request_id, row[c.ATTR_STATUS], int(row.get(c.ATTR_COUNTER, 0)), int(row[c.ATTR_TARGET]),
                        int(row.get(c.ATTR_SUCCEEDED, 0)), int(row.get(c.ATTR_FAILED, 0)))

    def wait(self, request_id: str, *, execution_arn: str | None = None, timeout: float = 3600.0,
             poll_seconds: float = 0.1, on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """Wait until the request is closed; return its final counter row."""
        deadline = time.monotonic() + timeout
        execution_arn = execution_arn or self.execution_arn(request_id)
        while True:
            progress = self.progress(request_id)
            if progress is None:
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
        names = {f"#{name}": name for name in (c.ATTR_REQUEST_ID, c.ATTR_STATUS, c.ATTR_COUNTER, c.ATTR_TARGET,
                                               c.ATTR_SUCCEEDED, c.ATTR_FAILED, c.ATTR_CREATED_AT,
                                               c.ATTR_DEADLINE, c.ATTR_COMPLETED_AT, c.ATTR_SUMMARY_KEY)}
        kwargs: dict[str, Any] = {"TableName": self.outputs[c.OUTPUT_COUNTER_TABLE],
                                  "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        rows: list[dict[str, Any]] = []
        for page in self._ddb.get_paginator("scan").paginate(**kwargs):
            rows.extend(plain_item(item) for item in page["Items"])
        return rows

    def results(self, request_id: str) -> list[dict[str, Any]]:
        """The request's results rows, one per case that reported (a Query on its partition)."""
        table = self.outputs.get(c.OUTPUT_RESULTS_TABLE)
        if not table:
            raise RequestFailed(f"the {c.STACK_NAME} stack has no output {c.OUTPUT_RESULTS_TABLE}")
        rows: list[dict[str, Any]] = []
        for page in self._ddb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="#rid = :rid",
            ExpressionAttributeNames={"#rid": c.ATTR_REQUEST_ID},
            ExpressionAttributeValues={":rid": {"S": request_id}},
        ):
            rows.extend(plain_item(item) for item in page["Items"])
        return rows

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
        """The request's summary if Summary has written it, else None."""
        return self.summary(row) if row.get(c.ATTR_SUMMARY_KEY) else None

    def summary(self, row: dict[str, Any]) -> dict[str, Any]:
        key = row.get(c.ATTR_SUMMARY_KEY)
        if not key:
            raise RequestFailed(f"request {row[c.ATTR_REQUEST_ID]!r} has no summary yet (status {row[c.ATTR_STATUS]})")
        body = self._s3.get_object(Bucket=self.outputs[c.OUTPUT_ARTIFACTS_BUCKET], Key=key)["Body"].read()
        return dict(json.loads(body))
