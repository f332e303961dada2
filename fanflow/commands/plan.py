"""`fanflow plan`: what one request will take and cost on AWS, predicted before anything is
deployed, for fanflow's design and the seed's, by the model in fanflow/awsmodel."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lambda_fns import constants as c

from .. import options
from ..awsmodel import fanflow_flow
from ..awsmodel.planner import plan, reservation_problem, sensitivity
from ..awsmodel.world import PlanInputs

MAX_CASES = 10_000_000
MAX_COMPUTE_SECONDS = 900.0  # Lambda's longest run
MAX_CONCURRENCY = 1_000_000
VARIANT_CHOICES = ("fanflow", "seed", "both")
PHASE_LABELS = {"fanOutDone": "fan-out done", "lastComputed": "last computation done",
                "lastCounted": "last case counted", "summaryWritten": "summary written"}
COST_LABELS = {"stepFunctions": "Step Functions", "lambdaRequests": "Lambda requests",
               "lambdaGbSeconds": "Lambda GB-seconds", "eventBridge": "EventBridge events",
               "dynamoDbWrites": "DynamoDB writes", "dynamoDbReads": "DynamoDB reads", "sqs": "SQS", "s3": "S3"}


def number_in(low: float, high: float, *, integer: bool) -> Callable[[str], Any]:
    """An argparse type: a finite number in [low, high]; argparse names the option."""
    def parse(text: str) -> Any:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if integer else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,.{0 if integer else 1}f} and "
                                             f"{high:,.{0 if integer else 1}f}, got {text}")
        return value
    return parse


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "plan", help="predict a request's time, limits and cost on AWS, before deploying",
        description="Simulate one request on AWS with the published quotas of a Region (Step Functions, "
        "EventBridge, Lambda, DynamoDB, SQS) for fanflow's design and the seed's: the time of each phase, "
        "the limit that binds it, and the cost per service. The quotas and prices are in "
        "local/aws_limits/quotas.py with their sources; the assumed latencies in local/aws_limits/assumptions.py.")
    parser.add_argument("--cases", type=number_in(1, MAX_CASES, integer=True), required=True, metavar="N",
                        help=f"cases in the request (1 to {MAX_CASES:,})")
    parser.add_argument("--compute-seconds", type=number_in(0, MAX_COMPUTE_SECONDS, integer=False), required=True,
                        metavar="S", help=f"work per case in seconds (0 to {MAX_COMPUTE_SECONDS:g})")
    parser.add_argument("--region", type=options.aws_region, default="us-east-1", metavar="R",
                        help="the Region, for its quota tier and prices (default: %(default)s)")
    parser.add_argument("--lambda-concurrency", type=number_in(1, MAX_CONCURRENCY, integer=True), default=1000,
                        metavar="N", help="the account's concurrent Lambda executions (default: %(default)s)")
    design = fanflow_flow.DESIGN
    parser.add_argument("--compute-reserved", type=number_in(0, MAX_CONCURRENCY, integer=True), metavar="N",
                        help="reserved concurrency of each compute function, its ceiling, as -c computeConcurrency "
                        f"deploys it (default: {design.compute_concurrency} for fanflow, as deployed; none for the "
                        "seed; 0: none); the reservations must leave 100 of --lambda-concurrency unreserved")
    parser.add_argument("--orchestration-reserved", type=number_in(0, MAX_CONCURRENCY, integer=True), metavar="N",
                        help="fanflow's floor under each orchestration function, as -c orchestrationConcurrency "
                        f"deploys it (default: {design.orchestration_concurrency}; 0: none)")
    parser.add_argument("--fan-out-concurrency", type=number_in(1, c.FANOUT_MAX_CONCURRENCY_LIMIT, integer=True),
                        metavar="N", help="fanflow's chunks emitted at once, as -c fanOutConcurrency deploys it "
                        f"(default: {design.fan_out_concurrency})")
    parser.add_argument("--variant", choices=VARIANT_CHOICES, default="both", help="design(s) to plan")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also show how much each assumption moves the wall time (halved, doubled)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw cases computed and counted against time (needs matplotlib)")
    parser.set_defaults(handler=cmd_plan)


def reservation_hint(inputs: PlanInputs, variant: str) -> str:
    """What would fit: the largest compute ceiling the account holds, or the concurrency it needs."""
    keep = int(inputs.q("lambda.unreserved.minimum"))
    if variant == "seed":
        return f"--compute-reserved at most {max(0, inputs.lambda_concurrency - keep):,}"
    floors = sum(fanflow_flow.reserved_concurrency(dataclasses.replace(inputs, compute_reserved=0)).values())
    compute_functions = len(fanflow_flow.reserved_concurrency(dataclasses.replace(
        inputs, compute_reserved=1, orchestration_reserved=0)))
    ceiling = (inputs.lambda_concurrency - keep - floors) // compute_functions
    if ceiling >= 1:
        return (f"--compute-reserved at most {ceiling:,} ({compute_functions} compute functions each reserve it), "
                "or a larger --lambda-concurrency")
    return "a larger --lambda-concurrency, or --compute-reserved 0 and a smaller --orchestration-reserved"


def require_matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("fanflow plan --plot needs matplotlib: pip install 'fanflow[plot]'") from None
    return plt


def cmd_plan(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    inputs = PlanInputs(cases=args.cases, compute_seconds=args.compute_seconds, region=args.region,
                        lambda_concurrency=args.lambda_concurrency, compute_reserved=args.compute_reserved,
                        orchestration_reserved=args.orchestration_reserved,
                        fan_out_concurrency=args.fan_out_concurrency)
    variants = ("fanflow", "seed") if args.variant == "both" else (args.variant,)
    for variant in variants:
        problem = reservation_problem(inputs, variant)
        if problem:
            raise UsageError(f"{problem}: {reservation_hint(inputs, variant)}")
    plt = require_matplotlib() if args.plot else None  # before the simulation, not after
    result = plan(inputs, variants)
    if args.sensitivity:
        result["sensitivity"] = {variant: sensitivity(inputs, variant) for variant in variants}
    if args.json:
        print(json.dumps(result))
    else:
        print_plan(result, Console())
    if plt is not None:
        draw(result, args.plot, plt)
        Console(stderr=True).print(f"wrote {args.plot}")
    return 0


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} s" + (f" ({value / 60:,.1f} min)" if value >= 120 else "")


def print_plan(result: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]{result['cases']:,} cases x {result['computeSeconds']:g} s[/bold] in {result['region']}, "
                  f"Lambda concurrency {result['lambdaConcurrency']:,}")
    for variant in result["variants"]:
        verdict = (f"wall {seconds(variant['wallSeconds'])}" if variant["completes"]
                   else f"[red]does not complete[/red]: {variant['failure']}")
        table = Table(title=f"{variant['variant']}: {verdict}", title_justify="left")
        for column in ("phase", "at", "binding limit", "its figure"):
            table.add_column(column, overflow="fold")
        for key, phase in variant["phases"].items():
            binding = phase.get("binding")
            name = "-" if binding is None else binding["limit"] + (
                f" (also {', '.join(binding['alsoBinding'])})" if binding["alsoBinding"] else "")
            table.add_row(PHASE_LABELS[key], seconds(phase["atSeconds"]),
                          "no quota: its latencies" if phase["atSeconds"] is not None and binding is None else name,
                          "" if binding is None else binding["figure"])
        console.print(table)
        cost = variant["cost"]
        console.print("cost of the request: " + ", ".join(
            f"{COST_LABELS[name]} ${usd:,.4f}" for name, usd in cost["usd"].items() if usd)
            + f"; [bold]total ${cost['totalUsd']:,.4f}[/bold] (prices: {cost['pricesFrom']})")
        if variant["reservedConcurrency"]:
            console.print("reserved concurrency: " + ", ".join(
                f"{name} {n:,}" for name, n in variant["reservedConcurrency"].items()))
        if variant["historyLimit"]:
            history = variant["historyLimit"]
            console.print(f"PreProcess history passes 25,000 events at case {history['case']:,} "
                          f"({history['atSeconds']:,} s)")
        elif variant["historyEvents"] is not None:
            console.print(f"PreProcess history: {variant['historyEvents']} events when the request completes, "
                          "at any size (each chunk's child execution keeps its own)")
        for note in variant["notes"]:
            if not note.startswith("PreProcess fails"):
                console.print(f"note: {note}")
        if variant["replications"] > 1:
            low, high = variant["wallSecondsRange"]
            console.print(f"median of {variant['replications']} runs with different jitter draws "
                          f"(range {low:,.1f} to {high:,.1f} s)")
    for variant, rows in result.get("sensitivity", {}).items():
        table = Table(title=f"{variant}: wall time change when an assumption is halved / doubled", title_justify="left")
        for column in ("assumption", "value", "x0.5", "x2"):
            table.add_column(column)
        for row in rows:
            change = row["wallChangePercent"]
            table.add_row(row["assumption"], f"{row['value']:g} {row['unit']}", f"{change['x0.5']:+.1f}%",
                          f"{change['x2']:+.1f}%")
        console.print(table)
    console.print(f"planned in {result['planningSeconds']:.2f} s")


def draw(result: dict[str, Any], path: Path, plt: Any) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for index, variant in enumerate(result["variants"]):
        color = f"C{index}"
        for curve, style in (("computed", "-"), ("counted", "--")):
            points = variant["timeline"][curve]
            if len(points) > 1:
                ax.plot(*zip(*points, strict=True), style, color=color, label=f"{variant['variant']}: cases {curve}")
    ax.set_xlabel("seconds since the request started")
    ax.set_ylabel("cases")
    ax.set_title(f"fanflow plan: {result['cases']:,} cases x {result['computeSeconds']:g} s, {result['region']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
