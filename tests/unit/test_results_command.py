"""`fanflow results` (fanflow/commands/results.py) against a fake client: which stored parts it
reads, how it filters and writes them (JSON Lines, CSV), that it streams, and how it refuses a
request that has no results."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from fanflow.commands import results as results_command
from fanflow.errors import RequestNotFound
from lambda_fns import constants as c

SUCCEEDED: dict[str, Any] = {"caseId": "0", "state": c.CASE_SUCCEEDED, "durationMs": 12}
FAILED: dict[str, Any] = {"caseId": "1", "state": c.CASE_FAILED, "durationMs": 3, "attempt": 2,
          "error": 'ValueError: bad input, "x", line 1\nline 2'}
TIMED_OUT: dict[str, Any] = {"caseId": "2", "state": c.STATUS_TIMED_OUT}
NOT_EMITTED: dict[str, Any] = {"caseId": "3", "state": c.CASE_NOT_EMITTED, "error": "fan-out gave up"}
LINES = [SUCCEEDED, FAILED, TIMED_OUT, NOT_EMITTED]


class FakeClient:
    """What `results` uses of FanflowClient: a request's row, its summary and its stored parts."""

    def __init__(self, *, status: str | None = c.STATUS_PARTIAL, lines: list[dict[str, Any]] | None = None,
                 stored: bool = True, known: bool = True, execution: dict[str, Any] | None = None,
                 found: bool = True) -> None:
        self.lines = LINES if lines is None else lines
        self.row = None if status is None else {c.ATTR_REQUEST_ID: "r", c.ATTR_STATUS: status,
                                                **({c.ATTR_SUMMARY_KEY: "s.json"} if stored else {})}
        self.known, self._execution, self.found = known, execution, found  # found: find_summary finds it
        self.read: list[str] = []  # the kinds of parts read
        self.yielded = 0  # lines read so far
        self.waited = False

    def existing_row(self, request_id: str) -> dict[str, Any] | None:
        if not self.known:
            raise RequestNotFound(f"no request {request_id!r} on the fake target")
        return self.row

    def execution(self, request_id: str) -> dict[str, Any] | None:
        return self._execution

    def find_summary(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if row[c.ATTR_STATUS] not in c.FINAL_STATUSES or not self.found:
            return None
        return {"requestId": "r", "results": {"cases": ["p0"], "notSucceeded": ["n0"]}}

    def summary(self, row: dict[str, Any]) -> dict[str, Any]:
        self.waited = True
        return {"requestId": "r", "results": {"cases": ["p0"], "notSucceeded": ["n0"]}}

    def result_lines(self, summary: dict[str, Any], kind: str = "cases") -> Iterator[dict[str, Any]]:
        self.read.append(kind)
        for line in self.lines:
            if kind == "cases" or line["state"] != c.CASE_SUCCEEDED:
                self.yielded += 1
                yield dict(line)


def written(client: FakeClient, fmt: str = "json", states: tuple[str, ...] = ()) -> str:
    out = io.StringIO()
    results_command.write_lines(results_command.case_lines(client, "r", frozenset(states)), out, fmt)  # type: ignore[arg-type]
    return out.getvalue()


# -- what is read and written ------------------------------------------------------------------
def test_json_lines_are_every_case_as_stored() -> None:
    client = FakeClient()
    text = written(client)
    assert [json.loads(line) for line in text.splitlines()] == LINES
    assert text.endswith("\n") and client.read == ["cases"]


@pytest.mark.parametrize(("states", "kind", "expected"), [
    ((c.CASE_FAILED,), "notSucceeded", [FAILED]),
    ((c.CASE_FAILED, c.STATUS_TIMED_OUT, c.CASE_NOT_EMITTED), "notSucceeded", [FAILED, TIMED_OUT, NOT_EMITTED]),
    ((c.CASE_SUCCEEDED,), "cases", [SUCCEEDED]),
    ((c.CASE_SUCCEEDED, c.STATUS_TIMED_OUT), "cases", [SUCCEEDED, TIMED_OUT]),
    (("CANCELLED",), "notSucceeded", []),
])
def test_states_filter_the_lines_and_only_unsucceeded_ones_read_only_their_parts(
        states: tuple[str, ...], kind: str, expected: list[dict[str, Any]]) -> None:
    client = FakeClient()
    assert [json.loads(line) for line in written(client, states=states).splitlines()] == expected
    assert client.read == [kind]


def test_csv_has_a_header_and_keeps_errors_with_commas_quotes_and_newlines_whole() -> None:
    text = written(FakeClient(), "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["caseId", "state", "attempt", "durationMs", "error"]
    assert rows[1:] == [["0", "SUCCEEDED", "", "12", ""], ["1", "FAILED", "2", "3", FAILED["error"]],
                        ["2", "TIMED_OUT", "", "", ""], ["3", "NOT_EMITTED", "", "", "fan-out gave up"]]
    assert len(text.splitlines()) == 6  # the error's newline is inside its quoted field


def test_csv_of_no_case_is_its_header_and_other_fields_are_left_out() -> None:
    assert written(FakeClient(lines=[]), "csv") == "caseId,state,attempt,durationMs,error\n"
    text = written(FakeClient(lines=[{**SUCCEEDED, "computedBy": "lambda"}]), "csv")
    assert text.splitlines()[1] == "0,SUCCEEDED,,12,"


class Recording(io.StringIO):
    """An output that notes, at each write, how many lines the client had read by then."""

    def __init__(self, client: FakeClient) -> None:
        super().__init__()
        self.client, self.read_at_write = client, list[int]()

    def write(self, text: str) -> int:
        self.read_at_write.append(self.client.yielded)
        return super().write(text)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_lines_are_written_as_they_are_read(fmt: str) -> None:
    # GIVEN a request of 1,000 cases
    client = FakeClient(lines=[{"caseId": str(i), "state": c.CASE_SUCCEEDED} for i in range(1000)])
    out = Recording(client)
    results_command.write_lines(results_command.case_lines(client, "r"), out, fmt)  # type: ignore[arg-type]
    # THEN each case is written before the next is read: nothing is held but the line in hand
    body = out.read_at_write[1:] if fmt == "csv" else out.read_at_write  # after csv's header
    assert body == list(range(1, 1001))


# -- the command -------------------------------------------------------------------------------
@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """`fanflow results` runs against the fake client put in `target["client"]`."""
    holder: dict[str, Any] = {"opened": 0}

    @contextlib.contextmanager
    def operated(name: str) -> Iterator[tuple[Any, Any]]:
        holder["opened"] += 1
        holder["target"] = name
        yield holder["client"], None

    monkeypatch.setattr(results_command, "operated", operated)
    yield holder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["results", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_states_repeat_or_come_as_a_list_in_any_letter_case(capsys: pytest.CaptureFixture[str],
                                                            target: dict[str, Any]) -> None:
    target["client"] = FakeClient()
    code, out, _ = run(capsys, "r", "--state", "failed,Timed_Out", "--state", "NOT_EMITTED", "--format", "csv")
    assert code == 0
    assert [row[0] for row in csv.reader(io.StringIO(out))] == ["caseId", "1", "2", "3"]


def test_output_to_a_file_says_how_many_on_stderr(capsys: pytest.CaptureFixture[str], target: dict[str, Any],
                                                  tmp_path: Path) -> None:
    target["client"] = FakeClient()
    path = tmp_path / "failed.jsonl"
    code, out, err = run(capsys, "r", "--state", "FAILED,TIMED_OUT", "-o", str(path), "--target", "aws")
    assert (code, out, target["target"]) == (0, "", "aws")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [FAILED, TIMED_OUT]
    assert err == f"wrote 2 cases (FAILED, TIMED_OUT) of request 'r' to {path}\n"
    assert list(tmp_path.iterdir()) == [path]


def test_an_unwritable_output_is_refused_before_anything_is_read(capsys: pytest.CaptureFixture[str],
                                                                 target: dict[str, Any], tmp_path: Path) -> None:
    code, out, err = run(capsys, "r", "-o", str(tmp_path / "missing" / "r.csv"))
    assert (code, out) == (2, "")
    assert f"--output {tmp_path / 'missing' / 'r.csv'}: directory {tmp_path / 'missing'} does not exist" in err
    assert target["opened"] == 0


def test_a_read_that_fails_midway_leaves_no_file(target: dict[str, Any], tmp_path: Path) -> None:
    class Failing(FakeClient):
        def result_lines(self, summary: dict[str, Any], kind: str = "cases") -> Iterator[dict[str, Any]]:
            yield dict(SUCCEEDED)
            raise ConnectionError("the target stopped answering")

    # GIVEN a read that fails after the first case, with an error that is an OSError too (as a read timeout)
    path = tmp_path / "r.jsonl"
    with pytest.raises(ConnectionError):
        results_command.write_file(results_command.case_lines(Failing(), "r"), path, "json")  # type: ignore[arg-type]
    # THEN the read's error goes on as it is (not as the file's), and no file is left
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_fails_midway_is_named_and_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a file system that fills up after the first case
    writes = 0

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            nonlocal writes
            writes += 1
            if writes > 1:
                raise OSError(28, "No space left on device")
            return super().write(text)

    monkeypatch.setattr(Path, "open", lambda self, *args, **kwargs: Full())
    path = tmp_path / "r.jsonl"
    # THEN it is refused naming the file and why
    with pytest.raises(results_command.UsageError, match=r"--output .*r\.jsonl: No space left on device"):
        results_command.write_file(results_command.case_lines(FakeClient(), "r"), path, "json")  # type: ignore[arg-type]


def test_an_unknown_request_exits_1(capsys: pytest.CaptureFixture[str], target: dict[str, Any]) -> None:
    target["client"] = FakeClient(known=False)
    code, out, err = run(capsys, "nope")
    assert (code, out) == (1, "")
    assert "no request 'nope' on the fake target" in err


@pytest.mark.parametrize(("client", "target_name", "message"), [
    (FakeClient(status=c.STATUS_RUNNING, stored=False), "embedded",
     "request 'r' has no results yet: it is RUNNING, and its summary is written when it ends; follow it with "
     "`fanflow watch r`"),
    (FakeClient(status=c.STATUS_SUMMARIZING, stored=False), "localstack",
     "it is SUMMARIZING, and its summary is written when it ends; follow it with `fanflow watch r --target "
     "localstack`"),
    (FakeClient(status=None, execution={"status": "RUNNING"}), "embedded",
     "request 'r' has no results yet: it is STARTING; follow it with `fanflow watch r`"),
    (FakeClient(status=None, execution={"status": "FAILED", "error": "InvalidRequest", "cause": "no cases"}),
     "embedded", "request 'r' has no results: PreProcess rejected it (InvalidRequest); `fanflow status r` says why"),
])
def test_a_request_without_a_summary_exits_2_saying_what_it_is(capsys: pytest.CaptureFixture[str],
                                                               target: dict[str, Any], client: FakeClient,
                                                               target_name: str, message: str) -> None:
    target["client"] = client
    code, out, err = run(capsys, "r", "--target", target_name)
    assert (code, out) == (2, "")
    assert message in err
    assert client.read == []


def test_a_request_closed_a_moment_ago_waits_for_its_summary(capsys: pytest.CaptureFixture[str],
                                                             target: dict[str, Any]) -> None:
    # GIVEN a closed request whose summary Summary has not stored yet
    client = FakeClient(found=False)
    target["client"] = client
    # THEN results waits for it (client.summary) and writes its cases
    code, out, _ = run(capsys, "r")
    assert code == 0 and client.waited is True and len(out.splitlines()) == len(LINES)
