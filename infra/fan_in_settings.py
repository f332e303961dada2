"""The fan-in's batching settings and their limits, checked before anything is synthesized
or changed (no CDK here: the CLI and the embedded runtime check options with it too)."""

from __future__ import annotations

# How the settings are called where they are set: CDK context keys, or CLI options.
CONTEXT_NAMES = ("fanInBatchSize", "fanInBatchWindow", "fanInConcurrency")
OPTION_NAMES = ("--fan-in-batch-size", "--fan-in-window", "--fan-in-concurrency")


def check_batching(*, batch_size: int, batch_window_seconds: int, max_concurrency: int,
                   names: tuple[str, str, str] = CONTEXT_NAMES) -> None:
    """The limits of an SQS event source mapping (Lambda developer guide, "Parameters for
    Amazon SQS event source mappings"): a ValueError naming the setting as `names` call it."""
    size, window, concurrency = names
    if not 1 <= batch_size <= 10_000:
        raise ValueError(f"{size} must be 1 to 10,000, got {batch_size}")
    if not 0 <= batch_window_seconds <= 300:
        raise ValueError(f"{window} must be 0 to 300 seconds, got {batch_window_seconds}")
    if batch_size > 10 and batch_window_seconds < 1:
        raise ValueError(f"{size} {batch_size} needs a {window} of at least 1 second "
                         "(more than 10 messages per batch need a batching window)")
    if not 2 <= max_concurrency <= 1000:
        raise ValueError(f"{concurrency} must be 2 to 1,000, got {max_concurrency}")
