"""`fanflow cancel` and `fanflow redrive`: a request's life after it starts, on any target,
through FanflowClient (boto3) only. Both go through the stack's own workflows (the Cancel
workflow, and a PreProcess execution for a redrive), which a user can start directly too."""

from __future__ import annotations

import argparse
import sys
import time

from lambda_fns import constants as c

from .. import options
from ..deployments import DEPLOYMENTS
from ..errors import NoEndpoint, RequestNotFound
from .ops import operated, print_status, watch_request


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cancel = commands.add_parser(
        "cancel", help="cancel a running request: it closes as CANCELLED",
        description="Cancel a running request: nothing is counted after the cancel, its fan-out stops putting "
        "the cases not yet sent, computations already running finish uncounted, and Summary runs once with "
        "status CANCELLED, listing the cases that had not completed and those that finished before. The same "
        f"as starting the stack's Cancel workflow (output {c.OUTPUT_CANCEL_ARN}) with {{\"requestId\": ...}}. "
        "Exit status: 0 cancelled, 1 no such request, 2 the request is not running (its status is named).",
        epilog="example: fanflow cancel req-1712345678901", formatter_class=argparse.RawDescriptionHelpFormatter)
    cancel.add_argument("request_id", type=options.request_id, metavar="REQUEST_ID")
    cancel.add_argument("--target", choices=DEPLOYMENTS, default="embedded", help="where the request runs")
    cancel.add_argument("--json", action="store_true", help="print the closed request's status as JSON")
    cancel.add_argument("--timeout", type=options.SECONDS, default=900.0, metavar="SECONDS",
                        help="how long to wait for the cancel to close the request (default: %(default)s)")
    cancel.set_defaults(handler=cmd_cancel)

    redrive = commands.add_parser(
        "redrive", help="run again only the cases of a finished request that failed or never completed",
        description="Start the next attempt of a request that ended PARTIAL, FAILED, TIMED_OUT or CANCELLED: only "
        "its cases that failed (--failed) and those that never completed (--timed-out: never counted, never "
        "emitted, or cancelled) are emitted again, under the same requestId; the request is RUNNING again with "
        "a new deadline, and closes when every redriven case has completed, counted exactly once across "
        f"attempts. At most {c.MAX_REDRIVES} redrives per request. The same as starting the PreProcess workflow "
        "with {\"redrive\": {\"requestId\": ..., \"failed\": true, \"timedOut\": true}}. Follows the attempt to "
        "its end like `fanflow watch` (unless --no-wait). Exit status: 0 every case succeeded, 3 the attempt "
        "ended otherwise, 2 the request cannot be redriven (the reason is named), 1 no such request.",
        epilog="examples:\n  fanflow redrive req-1712345678901            failed and never-completed cases\n"
        "  fanflow redrive req-1712345678901 --failed   only the failed ones",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    redrive.add_argument("request_id", type=options.request_id, metavar="REQUEST_ID")
    redrive.add_argument("--failed", action="store_true", help="re-emit the cases that failed")
    redrive.add_argument("--timed-out", action="store_true",
                         help="re-emit the cases that never completed (timed out, never emitted, or cancelled)")
    redrive.add_argument("--deadline", type=options.DEADLINE_SECONDS, metavar="SECONDS",
                         help="the attempt's deadline, from now (default: the stack's default for the number of "
                         "cases redriven)")
    redrive.add_argument("--target", choices=DEPLOYMENTS, default="embedded", help="where the request runs")
    redrive.add_argument("--no-wait", action="store_true", help="start the attempt and return")
    redrive.add_argument("--json", action="store_true", help="print JSON on stdout instead of tables")
    redrive.add_argument("--timeout", type=options.SECONDS, default=3600.0, metavar="SECONDS",
                         help="stop waiting after this long; the attempt goes on (default: %(default)s)")
    redrive.set_defaults(handler=cmd_redrive)


def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        with operated(args.target) as (client, _):
            started = time.monotonic()
            row = client.cancel(args.request_id, timeout=args.timeout)
            if not args.json:
                print(f"request {args.request_id!r} cancelled in {time.monotonic() - started:.1f} s", file=sys.stderr)
            print_status(client, row, now=time.time(), as_json=args.json, out=sys.stdout, wait_for_summary=True)
            return 0
    except NoEndpoint as exc:
        raise RequestNotFound(f"no request {args.request_id!r} on the embedded target: {exc}") from None


def cmd_redrive(args: argparse.Namespace) -> int:
    # Neither flag: both (the default); one flag: that one only.
    failed, timed_out = (True, True) if not (args.failed or args.timed_out) else (args.failed, args.timed_out)
    try:
        with operated(args.target) as (client, _):
            started = client.redrive(args.request_id, failed=failed, timed_out=timed_out,
                                     deadline_seconds=args.deadline)
            kinds = " and ".join(kind for kind, on in (("failed", failed), ("never-completed", timed_out)) if on)
            print(f"request {args.request_id!r}: attempt {started.attempt} started, re-emitting its {kinds} cases",
                  file=sys.stderr)
            if args.no_wait:
                return 0
            return watch_request(client, args.request_id, as_json=args.json, timeout=args.timeout,
                                 attempt=started.attempt, execution_arn=started.execution_arn)
    except NoEndpoint as exc:
        raise RequestNotFound(f"no request {args.request_id!r} on the embedded target: {exc}") from None
