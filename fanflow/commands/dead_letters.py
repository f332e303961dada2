"""`fanflow dead-letters`: list the stack's dead letters, and replay them (fanflow.dead_letters
reads and replays them)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import options, render
from ..dead_letters import QUEUES, peek, replay
from ..deployments import DEPLOYMENTS, DeploymentOptions, open_deployment
from ..errors import NoEndpoint


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "dead-letters", help="list the stack's dead letters, and replay them",
        description="List what lies in the stack's dead-letter queues: events EventBridge could not deliver "
        "(rule-targets) and completions the fan-in could not count (completions). With --replay, send each "
        "back where it came from (the bus, or the completion queue) and delete it once it is back; counting "
        "stays exactly once however often a message is replayed.")
    parser.add_argument("--target", choices=DEPLOYMENTS, default="embedded",
                        help="where the stack runs (default: embedded)")
    parser.add_argument("--queue", choices=[*QUEUES, "all"], default="all",
                        help="which dead-letter queue (default: all)")
    parser.add_argument("--limit", type=options.integer(1, 10_000), default=100, metavar="N",
                        help="messages read per queue, 1-10000 (default: %(default)s)")
    parser.add_argument("--replay", action="store_true", help="send the messages read back where they came from")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead of a table")
    parser.set_defaults(handler=cmd_dead_letters)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    names = list(QUEUES) if args.queue == "all" else [args.queue]
    try:
        with open_deployment(args.target, DeploymentOptions(in_process=False)) as target:
            rows = []
            for name in names:
                for letter in peek(target.client("sqs"), name, target.outputs[QUEUES[name]], limit=args.limit):
                    row = letter.describe()
                    if args.replay:
                        row["replayed"] = replay(target, letter)
                    rows.append(row)
    except NoEndpoint as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        rows = []
    if args.json:
        print(json.dumps({"deadLetters": rows}))
    else:
        render.output_console().print(render.dead_letters_table(rows, replayed=args.replay))
    return 0
