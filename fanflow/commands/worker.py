"""`fanflow worker`: compute the queue target's cases here (fanflow.worker does the work)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from lambda_fns import constants as c

from .. import options
from ..deployments import DEPLOYMENTS, open_deployment
from ..errors import DeploymentError
from ..worker import WorkerSettings, serve


def register(commands: Any) -> None:
    worker = commands.add_parser(
        "worker", help="compute the queue target's cases (runs anywhere, as long as a case takes)",
        description="Poll the queue compute target's queue (the stack output "
        f"{c.OUTPUT_WORK_QUEUE_URL}) and compute its cases, reporting each like the Compute function. "
        "SIGTERM or Ctrl-C stops polling and finishes the cases in hand; a second one releases them "
        "to other workers. On the embedded target it needs a `fanflow up` endpoint (`fanflow run` "
        f"starts its own workers). The role it runs as needs the policy in the stack output "
        f"{c.OUTPUT_WORKER_POLICY_ARN}.")
    worker.add_argument("--target", choices=DEPLOYMENTS, default="embedded",
                        help="where the stack is deployed (default: embedded, through a `fanflow up` endpoint)")
    worker.add_argument("--threads", type=options.integer(1, 1000), default=4, metavar="N",
                        help="cases computed at once, one polling thread each, 1-1000 (default: %(default)s)")
    worker.add_argument("--compute-seconds", type=options.number(0, c.MAX_DEADLINE_SECONDS), metavar="S",
                        help="simulated work per case, 0 or more (a queue case may take as long as its "
                        "request's deadline), unless the case sets computeSeconds (default: "
                        f"{c.COMPUTE_SECONDS_EMBEDDED} on the embedded target, else {c.COMPUTE_SECONDS_AWS}, "
                        "as the deployed functions)")
    worker.add_argument("--queue-output", default=c.OUTPUT_WORK_QUEUE_URL, metavar="OUTPUT",
                        help="the stack output holding the URL of the queue to poll, for another queue target "
                        "(default: %(default)s)")
    worker.add_argument("--compute-type", default=c.COMPUTE_TYPE_QUEUE, choices=c.COMPUTE_TYPES,
                        help="the queue target's compute type, recorded with each result as computedBy "
                        "(default: %(default)s)")
    worker.add_argument("--visibility-timeout", type=options.integer(1, 43_200),
                        default=c.WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS, metavar="SECONDS",
                        help="how long a case stays hidden from other workers between heartbeats, 1-43200 (SQS's "
                        "12 hours); a dead worker's case reappears after it (default: %(default)s)")
    worker.add_argument("--wait-seconds", type=options.integer(1, 20), default=c.WORKER_WAIT_SECONDS,
                        metavar="SECONDS", help="long-polling wait per receive, 1-20 (default: %(default)s)")
    worker.add_argument("--retention-days", type=options.RETENTION_DAYS, default=c.DEFAULT_RETENTION_DAYS,
                        metavar="DAYS", help="results rows expire after this, 1-3650 (default: %(default)s, as "
                        "deployed by default)")
    worker.add_argument("--max-cases", type=options.integer(1), metavar="N",
                        help="stop after completing N cases, 1 or more (default: run until stopped)")
    worker.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    if args.target == "embedded":
        from local.server import running_endpoint

        if running_endpoint() is None:
            raise DeploymentError("no `fanflow up` endpoint is running: a worker on the embedded target needs one "
                              "(start it with `fanflow up`); `fanflow run` on the embedded target starts its own "
                              "workers")
    seconds = args.compute_seconds
    if seconds is None:
        seconds = c.COMPUTE_SECONDS_EMBEDDED if args.target == "embedded" else c.COMPUTE_SECONDS_AWS
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    with open_deployment(args.target) as target:
        settings = WorkerSettings.from_outputs(
            target.outputs, compute_seconds=lambda: seconds, queue_output=args.queue_output,
            compute_type=args.compute_type, wait_seconds=args.wait_seconds, visibility_timeout=args.visibility_timeout)
        return serve(settings, target, threads=args.threads, max_cases=args.max_cases)
