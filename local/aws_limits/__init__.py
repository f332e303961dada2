"""AWS's limits as fanflow models them, shared by `fanflow plan` (a discrete-event simulation,
fanflow/awsmodel/) and the embedded emulator run under them (`--aws-limits REGION`): the
published quotas and prices with their pages (quotas.py), the latencies and unpublished
behaviours assumed (assumptions.py), and the clock-free primitives both enforce them with
(primitives.py: a token bucket, an account's Lambda concurrency, an item a transaction holds)."""
