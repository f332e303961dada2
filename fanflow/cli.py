"""The `fanflow` command line: one parser for every command (each group of commands in its own
module under fanflow/commands/, thin: parse, call the library, print) and the exit status each
error gives (fanflow/errors.py)."""

from __future__ import annotations

import argparse
import importlib
import sys

from lambda_fns.request_model import RequestError

from . import __version__
from .deployments import CONNECTION_ERRORS
from .errors import Interrupted, RequestFailed, UsageError

__all__ = ["build_parser", "main"]

EXAMPLES = """examples:
  fanflow run sample_data_sets/dataset_100.json      run a seed sample on the embedded target
  fanflow run --cases 1000 --json                   a generated 1000-case request, JSON output
  fanflow run my.json --request-id "order 42"        a file's cases under another requestId
  fanflow generate --cases 250 -o my_request.json   write a 250-case request in the seed's format
"""


# In the order `fanflow --help` lists their commands.
COMMAND_MODULES: tuple[str, ...] = ("run", "infra", "bench", "ops", "lifecycle", "results", "dead_letters", "worker",
                                    "plan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanflow",
        description="Fan a request out into independent computations on AWS serverless "
        "(Step Functions, EventBridge, Lambda, DynamoDB) and continue when every one has finished.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fanflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Each group of commands lives in its own module (fanflow/commands/) and adds its subparsers here.
    for module in COMMAND_MODULES:
        importlib.import_module(f"fanflow.commands.{module}").register(commands)
    # An unknown option is reported with the usage of the command it was given to.
    for subparser in commands.choices.values():
        subparser.set_defaults(command_parser=subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (also for --help, --version and an option argparse
    refuses, which exit 2 after the command's usage)."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.handler(args))
    except RequestError as exc:
        print(f"fanflow: invalid request: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        return 2
    except RequestFailed as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        return 1
    except CONNECTION_ERRORS as exc:
        print(f"fanflow: the target stopped answering: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fanflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
