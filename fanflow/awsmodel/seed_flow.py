"""The seed's design as `infra/seed_variant.py` builds it, service by service: a Standard
PreProcess whose inline Map (40 at a time) puts one event per case; each event invokes the
Compute function asynchronously; each completion starts one Standard Increment execution
that adds 1 to the counter item and runs Summary when the count reaches the target."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from local.aws_limits.quotas import QUOTAS

from .world import AsyncQueue, World, history_point

COMPUTE, SUMMARY = "seed.Compute", "seed.Summary"


@dataclass(frozen=True)
class SeedDesign:
    map_concurrency: int = 40  # the seed's MapRequests max_concurrency
    compute_memory_mb: int = 128  # CDK's default: seed_variant.py sets none
    summary_memory_mb: int = 128
    # PreProcess history (Standard): ExecutionStarted, InitCounter's 5 events, MapStateEntered
    # and MapStateStarted before the first iteration; 7 per iteration (MapIterationStarted,
    # PushEvent's TaskStateEntered/Scheduled/Started/Succeeded/StateExited, MapIterationSucceeded).
    history_before: int = 8
    history_per_case: int = 7
    # State transitions: InitCounter and MapRequests, one PushEvent per case; Increment runs
    # IncrementCounter, AllDone? and NotYet (or Summary Task) per case.
    preprocess_transitions: int = 2
    increment_transitions: int = 3


def run(world: World, design: SeedDesign = SeedDesign()) -> None:
    inputs, env = world.inputs, world.env
    cases = inputs.cases
    chunk = design.map_concurrency  # one wave of Map iterations moves as one cohort
    start = world.quota_bucket("sfn.standard.start", "StartExecution (Standard)")
    transitions = world.quota_bucket("sfn.transitions", "state transitions (Standard)")
    put_events = world.rate_bucket("eb.putevents.rate", "PutEvents requests")
    invocations = world.rate_bucket("eb.invocations.rate", "EventBridge target invocations")
    counter_wcu = world.rate_bucket("ddb.partition.wcu", "the counter item's write throughput",
                                    what=" write units on one item")
    state = inputs.a("sfn.standard.state")
    map_progress: list[tuple[float, int]] = [(0.0, 0)]
    world.usage.sfn_transitions += design.preprocess_transitions

    def counted(n: int) -> None:
        world.counted.add(env.now, n)
        if world.counted.total >= cases:
            world.mark("lastCounted")
            # Choice, then the Summary Task: Step Functions invokes it and waits (a task).
            world.at(2 * state, start_summary)

    def start_summary() -> None:
        env.process(summary_task())

    def summary_task() -> Generator[Any, Any, None]:
        def body() -> Generator[Any, Any, None]:
            world.usage.ddb_write_units += 1
            yield env.timeout(inputs.a("ddb.write"))
        yield from world.invoke_sync(SUMMARY, design.summary_memory_mb, body, "summary", retry=(6, 2.0, 2.0))
        world.mark("summaryWritten")

    def increment(n: int) -> None:
        """n completion events reach the Increment rule: n Standard executions."""
        delay = world.take_max([(start, n), (transitions, design.increment_transitions * n)], "count", cases=n)
        world.usage.sfn_transitions += design.increment_transitions * n
        world.usage.ddb_write_units += n

        def update() -> None:
            wait = world.take(counter_wcu, n, "count")
            world.at(wait + inputs.a("ddb.write"), lambda: counted(n))
        world.at(delay + inputs.a("sfn.start") + state, update)

    def completed(n: int) -> None:
        world.computed.add(env.now, n)
        world.mark("lastComputed")
        world.usage.eb_events += n
        delay = world.take(put_events, n, "count")  # the completion PutEvents, one entry per call
        delay += world.take(invocations, n, "count")
        world.at(delay + inputs.a("eb.delivery"), lambda: increment(n))

    compute = AsyncQueue(world, COMPUTE, design.compute_memory_mb,
                         run_seconds=lambda: inputs.compute_seconds + inputs.a("seed.compute.overhead"),
                         on_done=completed)

    def deliver(n: int) -> None:
        delay = world.take(invocations, n, "compute")
        world.at(delay + inputs.a("eb.delivery"), lambda: compute.submit(n))

    def preprocess() -> Generator[Any, Any, None]:
        yield env.timeout(world.take(start, 1, "fanOut") + inputs.a("sfn.start"))
        # InitCounter: SET counter = 0, target = length.
        world.usage.ddb_write_units += 1
        yield env.timeout(world.take(transitions, 1, "fanOut") + state + inputs.a("ddb.write"))
        slots = world.limit("inline Map concurrency", f"{design.map_concurrency} iterations at once "
                            "(the seed's MapRequests)", QUOTAS["sfn.map.inline.concurrency"].source)
        iteration = state + inputs.a("eb.putevents.call")
        done = 0
        while done < cases:
            n = min(chunk, cases - done)
            # Every case not yet emitted waits while this chunk goes through: book the chunk's
            # token delays and its iterations' latency on the limits behind them.
            remaining = cases - done
            delay = world.take_max([(transitions, n), (put_events, n)], "fanOut", cases=remaining)
            waves = math.ceil(n / design.map_concurrency)
            slots.add("fanOut", remaining * waves * iteration)
            yield env.timeout(delay + waves * iteration)
            world.usage.sfn_transitions += n
            world.usage.eb_events += n
            done += n
            map_progress.append((env.now, done))
            deliver(n)
        world.mark("fanOutDone")

    env.process(preprocess())
    env.run()
    world.history = history_point(map_progress, design.history_before, design.history_per_case,
                                  int(inputs.q("sfn.history.events")), unit=1)

