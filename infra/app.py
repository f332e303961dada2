"""The CDK app entry point (`cdk synth` runs this from infra/). Synthesis is pure: no
network, no STS; account and region come from the environment only here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.components.concurrency import ConcurrencyPlan
from infra.nag import apply_nag
from infra.stack import FanflowStack
from lambda_fns import constants as c


def build_app(outdir: str | None = None, *, context: dict[str, object] | None = None) -> cdk.App:
    app = cdk.App(outdir=outdir, context=context or {})
    compute_seconds = float(app.node.try_get_context("computeSeconds") or c.COMPUTE_SECONDS_AWS)
    retention_days = int(app.node.try_get_context("retentionDays") or c.DEFAULT_RETENTION_DAYS)
    sampling_rate = app.node.try_get_context("xraySamplingRate")

    def context_int(name: str, default: int) -> int:
        value = app.node.try_get_context(name)
        try:
            return default if value is None or value == "" else int(value)
        except (TypeError, ValueError):
            raise SystemExit(f"-c {name} must be a whole number, got {value!r}") from None

    fan_out_concurrency = context_int("fanOutConcurrency", c.FANOUT_MAX_CONCURRENCY)
    if not 1 <= fan_out_concurrency <= c.FANOUT_MAX_CONCURRENCY_LIMIT:
        raise SystemExit(f"-c fanOutConcurrency must be 1 to {c.FANOUT_MAX_CONCURRENCY_LIMIT}, "
                         f"got {fan_out_concurrency}")
    request_buckets = tuple(name.strip() for name in str(app.node.try_get_context("requestBuckets") or "").split(",")
                            if name.strip())
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    stack = FanflowStack(
        app, c.STACK_NAME,
        compute_seconds=compute_seconds,
        retention_days=retention_days,
        alarm_email=app.node.try_get_context("alarmEmail") or None,
        alarm_topic_arn=app.node.try_get_context("alarmTopic") or None,
        trace_sampling_rate=c.DEFAULT_XRAY_SAMPLING_RATE if sampling_rate is None else float(sampling_rate),
        fan_in_batch_size=context_int("fanInBatchSize", c.FAN_IN_BATCH_SIZE),
        fan_in_batch_window_seconds=context_int("fanInBatchWindow", c.FAN_IN_BATCH_WINDOW_SECONDS),
        fan_in_concurrency=context_int("fanInConcurrency", c.FAN_IN_MAX_CONCURRENCY),
        fan_out_concurrency=fan_out_concurrency,
        request_buckets=request_buckets,
        concurrency=ConcurrencyPlan.from_context(app.node.try_get_context),
        # No bootstrap-version rule: the same template must also deploy where no CDK
        # bootstrap stack exists (the embedded emulator).
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
        env=cdk.Environment(account=account, region=region) if account and region else None,
    )
    apply_nag(stack)
    if str(app.node.try_get_context("seedVariant")).lower() == "true":
        from infra.seed_variant import SeedVariantStack

        SeedVariantStack(app, synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
                         env=stack.environment if account and region else None)
    return app


if __name__ == "__main__":
    build_app().synth()
