"""`fanflow results`: the per-case results of a finished request, streamed from the JSON Lines
parts its summary stored beside it (FanflowClient.result_lines), filtered by state, as JSON
Lines or CSV, one case at a time: a million cases need no more memory than one."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shlex
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from lambda_fns import constants as c

from .. import options, views
from ..client import FanflowClient
from ..deployments import DEPLOYMENTS
from ..errors import NoEndpoint, RequestFailed, RequestNotFound, UsageError
from .ops import operated

# A case's state in its line: its counted outcome, or why it has none. CANCELLED: a case a
# cancelled request never ran (issue 17's cancel).
STATES = (c.CASE_SUCCEEDED, c.CASE_FAILED, c.STATUS_TIMED_OUT, c.CASE_NOT_EMITTED, c.CASE_CANCELLED)
FORMATS = ("json", "csv")
CSV_COLUMNS = ("caseId", "state", "attempt", "durationMs", "error")
# The summary's per-case parts: every case's line, and only those of the cases that did not succeed.
EVERY_CASE, NOT_SUCCEEDED = "cases", "notSucceeded"

EXAMPLES = """examples:
  fanflow results req-1                                  every case, JSON Lines on stdout
  fanflow results req-1 --state FAILED,TIMED_OUT         the cases that did not finish well
  fanflow results req-1 --state failed | jq -r .error    the failures' errors
  fanflow results req-1 --format csv -o req-1.csv        every case as CSV, in a file
  fanflow results req-1 --target aws --state FAILED      a request on AWS
"""


def register(commands: Any) -> None:
    results = commands.add_parser(
        "results", help="stream the per-case results of a finished request (JSON Lines or CSV)",
        description="Write every case's result of a finished request, as its summary stored them: caseId, state "
        f"({', '.join(STATES)}), and when known attempt, durationMs and error. Streams them, in the summary's "
        "order, one case at a time, whatever the request's size. Exit status: 0 written, 1 no such request, 2 an "
        "invalid option or a request that has no results yet (still running: follow it with `fanflow watch`).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    results.add_argument("request_id", type=options.request_id, metavar="REQUEST_ID")
    results.add_argument("--state", dest="states", type=states, action="extend", metavar="STATE[,STATE...]",
                         help=f"only the cases in these states (upper or lower case): {', '.join(STATES)}; "
                         "repeatable or comma-separated (default: every case)")
    results.add_argument("--format", choices=FORMATS, default="json",
                         help="json: JSON Lines, one object per case, as stored; csv: a header "
                         f"({','.join(CSV_COLUMNS)}), then a row per case (default: %(default)s)")
    results.add_argument("-o", "--output", type=Path, metavar="FILE",
                         help="write to FILE (replaced once every case is written) and say on stderr how many; "
                         "'-' or none: stdout")
    results.add_argument("--target", choices=DEPLOYMENTS, default="embedded",
                         help="where the request ran (default: embedded, a `fanflow up` endpoint)")
    results.set_defaults(handler=cmd_results)


def states(text: str) -> list[str]:
    """`--state`: one state or a comma-separated list of them, in any case."""
    chosen = [part.strip().upper() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in STATES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected states from {', '.join(STATES)}, got {text!r}")
    return chosen


class NoResultsYet(UsageError):
    """The request exists but has no summary, so no per-case results; exit status 2."""


def cmd_results(args: argparse.Namespace) -> int:
    to_file = args.output is not None and str(args.output) != "-"
    if to_file:
        options.check_writable(args.output, "--output")  # before anything is read
    wanted = frozenset(args.states or ())
    try:
        with operated(args.target) as (client, _):
            lines = case_lines(client, args.request_id, wanted, target=args.target)
            if not to_file:
                return _to_stdout(lines, args.format)
            written = write_file(lines, args.output, args.format)
    except NoEndpoint as exc:
        raise RequestNotFound(f"no request {args.request_id!r} on the embedded target: {exc}") from None
    which = f" ({', '.join(sorted(wanted))})" if wanted else ""
    print(f"wrote {written} cases{which} of request {args.request_id!r} to {args.output}", file=sys.stderr)
    return 0


def case_lines(client: FanflowClient, request_id: str, wanted: frozenset[str] = frozenset(), *,
               target: str = "embedded") -> Iterator[dict[str, Any]]:
    """The request's case lines in the given states (every case when none is given). Checked
    before the first line is read: RequestNotFound for an unknown request, NoResultsYet for one
    that has no summary yet."""
    summary = finished_summary(client, request_id, target=target)
    parts = summary.get("results", {})
    if not isinstance(parts, dict) or EVERY_CASE not in parts:
        raise RequestFailed(f"the summary of request {request_id!r} names no per-case results (it was written by "
                            "an older fanflow): `fanflow status` shows what it holds")
    # Only the cases that did not succeed asked for: their own parts hold them, and nothing else.
    kind = NOT_SUCCEEDED if wanted and c.CASE_SUCCEEDED not in wanted and NOT_SUCCEEDED in parts else EVERY_CASE
    lines = client.result_lines(summary, kind)
    return (line for line in lines if line.get("state") in wanted) if wanted else lines


def finished_summary(client: FanflowClient, request_id: str, *, target: str = "embedded") -> dict[str, Any]:
    """The summary of a finished request; NoResultsYet while it runs, or when it never opened."""
    row = client.existing_row(request_id)
    if row is None:
        view = views.starting_view(request_id, client.execution(request_id))
        if view["status"] == views.REJECTED:
            raise NoResultsYet(f"request {request_id!r} has no results: PreProcess rejected it ({view.get('error')}); "
                               f"`{_command('status', request_id, target)}` says why")
        raise NoResultsYet(f"request {request_id!r} has no results yet: it is {view['status']}; follow it with "
                           f"`{_command('watch', request_id, target)}`")
    summary = client.find_summary(row)
    if summary is not None:
        return summary
    if row.get(c.ATTR_STATUS) in c.FINAL_STATUSES:
        return client.summary(row)  # closed a moment ago: Summary is storing it
    raise NoResultsYet(f"request {request_id!r} has no results yet: it is {row.get(c.ATTR_STATUS)}, and its "
                       f"summary is written when it ends; follow it with `{_command('watch', request_id, target)}`")


def _command(name: str, request_id: str, target: str) -> str:
    return f"fanflow {name} {shlex.quote(request_id)}" + ("" if target == "embedded" else f" --target {target}")


def write_lines(lines: Iterable[dict[str, Any]], out: TextIO | _CheckedOutput, fmt: str) -> int:
    """Write case lines as JSON Lines or CSV (header first, even for no case); how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for line in lines:
            writer.writerow(line)
            count += 1
        return count
    for line in lines:
        out.write(json.dumps(line) + "\n")
        count += 1
    return count


def write_file(lines: Iterable[dict[str, Any]], path: Path, fmt: str) -> int:
    """Write to a file beside `path`, then put it in place: an interrupted read leaves no half file.
    A failure of the file is a UsageError naming it; one of the read (some are OSErrors too, as a
    read timeout) goes on as it is."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with _output_errors(path):
            out = partial.open("w", encoding="utf-8", newline="")
        with out:
            count = write_lines(lines, _CheckedOutput(out, path), fmt)
            with _output_errors(path):
                out.flush()
        with _output_errors(path):
            partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


@contextlib.contextmanager
def _output_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise UsageError(f"--output {path}: {exc.strerror or exc}") from None


class _CheckedOutput:
    """A file whose write errors are told from the read's."""

    def __init__(self, out: TextIO, path: Path) -> None:
        self._out, self._path = out, path

    def write(self, text: str) -> int:
        with _output_errors(self._path):
            return self._out.write(text)


def _to_stdout(lines: Iterable[dict[str, Any]], fmt: str) -> int:
    try:
        write_lines(lines, sys.stdout, fmt)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped (`| head`): what it read is what it wanted. Python's own flush at
        # exit would fail again on the closed pipe, so stdout goes nowhere from here.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
