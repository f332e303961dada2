"""Names, event sources, detail-types, sizes and timeouts shared by infra, handlers,
the embedded runtime, the CLI and the tests. Each string is written here once."""

from __future__ import annotations

STACK_NAME = "Fanflow"
SEED_VARIANT_STACK_NAME = "FanflowSeedVariant"  # the seed's design, for `fanflow bench` only

# Event contract (kept from the seed so that seed-style compute functions plug in).
# Fan-out event: detail = {"requestId": ..., "request": {"caseId": ...}, "deadline": epoch seconds}
# Completion event: requestId and request, plus "state" (SUCCEEDED or FAILED) and "error" ("" when
# none). The fan-in counts a case by its state, with fixed update expressions (lambda_fns/counting.py).
PREPROCESS_SOURCE = "com.preprocess.stepfunction"
COMPUTE_SOURCE = "com.computing.lambda"
SUMMARY_SOURCE = "com.fanflow.summary"
CASE_DETAIL_TYPE = "fanflow.case.requested"
COMPLETION_DETAIL_TYPE = "fanflow.case.completed"
SUMMARY_DETAIL_TYPE = "fanflow.request.completed"

# What Lambda puts on the bus when an asynchronous invocation fails after its retries
# (the compute function's on-failure destination).
LAMBDA_DESTINATION_SOURCE = "lambda"
LAMBDA_FAILURE_DETAIL_TYPE = "Lambda Function Invocation Result - Failure"
COMPUTE_ASYNC_RETRIES = 2

# Compute targets. A case may name the target that computes it in its "computeType"; a
# case without one goes to the default target. Infra registers one target per type and
# request validation accepts exactly these (tests/unit/test_compute_targets_infra.py checks both).
ATTR_COMPUTE_TYPE = "computeType"
COMPUTE_TYPE_LAMBDA = "lambda"  # the Compute function, the default target
COMPUTE_TYPE_LAMBDA_LARGE = "lambda-large"  # the same handler with a full vCPU
COMPUTE_TYPE_WORKFLOW = "workflow"  # a Step Functions workflow per case
COMPUTE_TYPE_QUEUE = "queue"  # an SQS queue consumed by `fanflow worker`
DEFAULT_COMPUTE_TYPE = COMPUTE_TYPE_LAMBDA
COMPUTE_TYPES = (COMPUTE_TYPE_LAMBDA, COMPUTE_TYPE_LAMBDA_LARGE, COMPUTE_TYPE_WORKFLOW, COMPUTE_TYPE_QUEUE)
# A case's own simulated work time, in seconds; without it, the compute target's configured time.
ATTR_COMPUTE_SECONDS = "computeSeconds"

# Case outcomes carried by the completion event's "state".
CASE_SUCCEEDED = "SUCCEEDED"
CASE_FAILED = "FAILED"
# A results row's state before its case has a result: Emit registers every case of its batch
# as a pending row before it puts the batch's events, and only a pending row takes a result.
# A case without a row is not in the request (or was never emitted): nothing is recorded for it.
CASE_PENDING = "PENDING"
# A case a compute target received after its request's deadline: skipped, not computed.
CASE_EXPIRED = "EXPIRED"
CASE_RESULT_STATES = frozenset({CASE_SUCCEEDED, CASE_FAILED})
# A case's state in a summary when its fan-out batch was given up before it was emitted.
CASE_NOT_EMITTED = "NOT_EMITTED"
# A case's state in the summary of a cancelled request when it had not completed (or its
# completion was not counted) when the request was cancelled.
CASE_CANCELLED = "CANCELLED"
# The fan-out event's request deadline (epoch seconds): a compute target skips a case received after it.
DETAIL_DEADLINE = "deadline"
# The request's number of results shards, in the fan-out event and echoed in the completion: it
# finds the case's results row (lambda_fns/keys.py).
DETAIL_SHARDS = "shards"
# The request's attempt a fan-out event belongs to (1, then 2, 3, ... for each redrive), echoed
# in the completion: a completion counts only for the attempt its case's row is waiting for, so a
# late one from an earlier attempt is never counted twice (lambda_fns/counting.py). Absent means 1.
DETAIL_ATTEMPT = "attempt"

# Request lifecycle on the counter row.
STATUS_RUNNING = "RUNNING"
STATUS_SUMMARIZING = "SUMMARIZING"
STATUS_SUCCEEDED = "SUCCEEDED"
STATUS_PARTIAL = "PARTIAL"
STATUS_FAILED = "FAILED"
STATUS_TIMED_OUT = "TIMED_OUT"
STATUS_CANCELLED = "CANCELLED"  # closed by `fanflow cancel` (the Cancel workflow) before its cases completed
FINAL_STATUSES = frozenset({STATUS_SUCCEEDED, STATUS_PARTIAL, STATUS_FAILED, STATUS_TIMED_OUT, STATUS_CANCELLED})
# What a redrive may take up again: a request that ended with cases that failed or never completed.
REDRIVABLE_STATUSES = frozenset({STATUS_PARTIAL, STATUS_FAILED, STATUS_TIMED_OUT, STATUS_CANCELLED})
# Redrives a request may have (attempts 2 to 1 + MAX_REDRIVES).
MAX_REDRIVES = 3

# Why Summary was started.
REASON_COMPLETED = "COMPLETED"
REASON_TIMED_OUT = "TIMED_OUT"
REASON_FAN_OUT_FAILED = "FAN_OUT_FAILED"  # a fan-out batch was lost: closed once the emitted cases are counted
REASON_CANCELLED = "CANCELLED"  # the Cancel workflow claimed the request

# Counter row attributes (table keyed by requestId).
ATTR_REQUEST_ID = "requestId"
ATTR_COUNTER = "counter"
ATTR_EXPECTED = "target"  # the cases the request waits for, to be counted: the seed's `target` column
ATTR_SUCCEEDED = "succeeded"
ATTR_FAILED = "failed"
ATTR_STATUS = "status"
ATTR_CREATED_AT = "createdAt"
ATTR_DEADLINE = "deadline"
ATTR_EXPIRES_AT = "expiresAt"  # the TTL attribute of both tables
ATTR_MANIFEST_KEY = "manifestKey"
ATTR_SUMMARY_KEY = "summaryKey"
ATTR_COMPLETED_AT = "completedAt"
# What the fan-in records about its own work on the counter row (`fanflow run --json` fanIn).
ATTR_FAN_IN_BATCHES = "fanInBatches"  # counting transactions committed for the request
ATTR_CONFLICT_RETRIES = "conflictRetries"  # attempts cancelled by a conflict or a throttle, then retried
ATTR_COUNTER_WRITES = "counterWrites"  # writes to the counter row: open, every counting attempt, claim, close
# Epoch seconds at which the row was last claimed for Summary (RUNNING -> SUMMARIZING, or a
# stale SUMMARIZING claim taken over); set with every claim, by Increment and by PreProcess.
ATTR_CLAIMED_AT = "claimedAt"
ATTR_PUBLISHED_AT = "publishedAt"  # when Summary published fanflow.request.completed for the final status
# Set by PreProcess when a fan-out batch was finally lost: why, and how many cases were never emitted.
ATTR_FAN_OUT_ERROR = "fanOutError"
ATTR_NOT_EMITTED = "notEmitted"
ATTR_LOST_CHUNKS = "lostChunks"  # the fan-out chunks whose loss is recorded (a number set): recorded once each
ATTR_SHARDS = "shards"  # the request's results shards (lambda_fns/keys.py), fixed at Prepare
ATTR_CHUNKS = "chunks"  # the request's fan-out chunks
ATTR_CHUNK_PREFIX = "chunkPrefix"  # where Prepare stored its cases in chunks (a redrive reads them)
ATTR_CHUNK_CASES = "chunkCases"  # cases per chunk there
# The request's lifecycle: its attempt (1, then one more per redrive), the PreProcess execution
# running the attempt (the one a cancel stops), when it was cancelled, and how many cases the
# current attempt re-emitted (0 for attempt 1).
ATTR_ATTEMPT = "attempt"
ATTR_EXECUTION_ARN = "executionArn"
ATTR_CANCELLED_AT = "cancelledAt"
ATTR_REDRIVEN = "redriven"
ATTR_CASES = "cases"  # the request's size (its target may be lower: cases given up, or not redriven)
# Results table attributes: keyed by requestShard ("<requestId>#<shard>", write sharding: see
# lambda_fns/keys.py) and caseId; every row also holds its plain requestId.
ATTR_REQUEST_SHARD = "requestShard"
ATTR_CASE_ID = "caseId"
ATTR_OUTCOME = "outcome"  # written once by Increment: the case has been counted
ATTR_OUTCOME_ERROR = "outcomeError"  # the error the completion event reported, if any
ATTR_STATE = "state"
ATTR_ERROR = "error"
ATTR_STARTED_AT = "startedAt"
ATTR_FINISHED_AT = "finishedAt"
ATTR_DURATION_MS = "durationMs"
ATTR_COMPUTED_BY = "computedBy"  # the compute type of the target that ran the case

# Environment variables set by the constructs and read once at cold start.
ENV_COUNTER_TABLE = "COUNTER_TABLE_NAME"
ENV_RESULTS_TABLE = "RESULTS_TABLE_NAME"
ENV_ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET_NAME"
ENV_COMPUTE_SECONDS = "COMPUTE_SECONDS"
ENV_RETENTION_SECONDS = "RETENTION_SECONDS"
ENV_CHUNK_CASES = "FANOUT_CHUNK_CASES"
ENV_FANOUT_CONCURRENCY = "FANOUT_CONCURRENCY"  # the fan-out Map's MaxConcurrency, for the shard rule
ENV_COMPUTE_CONCURRENCY = "COMPUTE_CONCURRENCY"  # Compute's ceiling (else the account's), for the default deadline
ENV_FANOUT_ATTEMPTS = "FANOUT_ATTEMPTS"
ENV_FANOUT_BACKOFF_BASE_SECONDS = "FANOUT_BACKOFF_BASE_SECONDS"
ENV_FANOUT_BACKOFF_MAX_SECONDS = "FANOUT_BACKOFF_MAX_SECONDS"
ENV_COMPUTE_TYPE = "COMPUTE_TYPE"  # the compute type a compute function serves
ENV_INCREMENT_ARN = "INCREMENT_STATE_MACHINE_ARN"  # the fan-in consumer starts one execution per batch
# The seed's variable names for the Compute function.
ENV_EVENTBUS_NAME = "EVENTBUS_NAME"
ENV_EVENTBUS_ARN = "EVENTBUS_ARN"
ENV_EVENTBUS_SOURCE = "EVENTBUS_SOURCE"
ENV_EVENTBUS_DETAILTYPE = "EVENTBUS_DETAILTYPE"

# Stack outputs through which every client finds the deployed resources.
OUTPUT_PREPROCESS_ARN = "PreProcessStateMachineArn"
OUTPUT_INCREMENT_ARN = "IncrementStateMachineArn"
OUTPUT_CANCEL_ARN = "CancelStateMachineArn"  # cancels a request: {"requestId": ...}
OUTPUT_COMPLETION_QUEUE_URL = "CompletionQueueUrl"  # the fan-in buffer
OUTPUT_COMPLETION_DLQ_URL = "CompletionDeadLetterQueueUrl"  # completions that could not be counted
OUTPUT_RULE_DLQ_URL = "RuleTargetDeadLetterQueueUrl"  # events EventBridge could not deliver
OUTPUT_FAN_IN_CONSUMER = "FanInConsumerFunctionName"  # reads the buffer in batches (its event source mapping)
OUTPUT_COUNTER_TABLE = "CounterTableName"
OUTPUT_RESULTS_TABLE = "ResultsTableName"
OUTPUT_BUS_NAME = "EventBusName"
OUTPUT_ARTIFACTS_BUCKET = "ArtifactsBucketName"
OUTPUT_COMPUTE_FUNCTION = "ComputeFunctionName"
OUTPUT_SUMMARY_FUNCTION = "SummaryFunctionName"
OUTPUT_COMPUTE_FUNCTIONS = "ComputeFunctionNames"  # every function that computes cases, comma-separated
OUTPUT_WORK_QUEUE_URL = "WorkQueueUrl"  # the queue target's queue, polled by `fanflow worker`
OUTPUT_WORKER_POLICY_ARN = "WorkerPolicyArn"  # what a worker's role needs, to attach where it runs

# Limits (AWS's, and the ones fanflow chooses).
PUT_EVENTS_MAX_ENTRIES = 10  # PutEvents accepts at most 10 entries per call
BATCH_WRITE_MAX_ITEMS = 25  # BatchWriteItem accepts at most 25 put or delete requests per call
BATCH_GET_MAX_KEYS = 100  # BatchGetItem reads at most 100 items per call
# Fan-out in chunks. Prepare writes a request's cases to the artifacts bucket in chunks of
# FANOUT_CHUNK_CASES (JSON arrays); PreProcess's fan-out is a Distributed Map over the chunk
# numbers, one child execution per chunk, so the state carries numbers, never cases, and the
# parent's history holds the Map Run, not one iteration per chunk. Emit reads its chunk and
# puts ten entries per PutEvents call.
FANOUT_CHUNK_CASES = 1000  # 100 PutEvents calls and 40 BatchWriteItem calls per Emit invocation
# Chunks emitted at once (the Map's MaxConcurrency; CDK context fanOutConcurrency overrides it).
# One Emit makes about 40 PutEvents calls a second (one call of 10 entries every ~25 ms, an
# assumption: a call's latency from inside the Region), so 10 at once stay near 400 calls a
# second: within every Region's PutEvents quota but the smallest tier (400/s), where throttled
# entries are retried (AWS_LIMITS: 10,000/s in the big Regions, 2,400 to 400 elsewhere).
FANOUT_MAX_CONCURRENCY = 10
FANOUT_MAX_CONCURRENCY_LIMIT = 1000  # what the context may ask (a Map Run runs up to 10,000 children)
EMIT_PUT_EVENTS_PER_SECOND = 40  # the assumption above, also behind the shard rule (lambda_fns/keys.py)
SFN_MAX_INPUT_BYTES = 256 * 1024  # Step Functions state input/output limit
# A request travels inline (as the PreProcess input, in the seed's format) up to this size;
# above it, it is stored in S3 and PreProcess gets a reference to it (`requestRef`).
MAX_REQUEST_BYTES = 240 * 1024  # leaves room for the execution's own fields
# A request by reference: at most this many bytes as JSON (Prepare reads and checks it whole).
MAX_REFERENCED_REQUEST_BYTES = 256 * 1024 * 1024
# One case, as minified JSON: ten cases travel in one PutEvents call, whose entries may total
# 256 KB (with their envelopes), and one in an SQS message for the queue target (256 KB).
MAX_CASE_BYTES = 24 * 1024
MAX_CASE_ID_LENGTH = 128
# A requestId is the caller's business key: any text, up to this many characters (and bytes
# in UTF-8: it names the request's summary and manifest objects, and S3 keys are limited to
# 1,024 bytes). The PreProcess execution name is derived from it (request_model.execution_name).
MAX_REQUEST_ID_LENGTH = 256
MAX_REQUEST_ID_BYTES = 960
SFN_MAX_NAME_LENGTH = 80  # StartExecution: an execution name is 1-80 characters
MAX_CASES = 1_000_000
# The artifacts bucket's prefixes: requests stored for PreProcess, their chunks and manifests,
# and summaries (each key names its request by a digest: a requestId is any text).
REQUESTS_PREFIX = "requests/"
CHUNKS_PREFIX = "chunks/"
MANIFESTS_PREFIX = "manifests/"
SUMMARIES_PREFIX = "summaries/"
# The PreProcess input of a request stored in S3: {"requestRef": "s3://bucket/key"} (and
# optionally its "requestId", which must then match the stored request's).
INPUT_REQUEST_REF = "requestRef"
TRANSACTION_MAX_ITEMS = 100  # TransactWriteItems: at most 100 items
# The fan-in buffer (an SQS queue) is read by a Lambda event source mapping in batches: up to
# FAN_IN_BATCH_SIZE completions, waiting at most FAN_IN_BATCH_WINDOW_SECONDS for a batch to
# fill, at most FAN_IN_MAX_CONCURRENCY batches at once (ScalingConfig.MaximumConcurrency, 2 to
# 1,000). CDK context fanInBatchSize, fanInBatchWindow and fanInConcurrency override them.
# 99, not 100: a full batch of one request's completions is then one transaction (99 results
# rows and the counter row: TransactWriteItems' 100 items), not two.
FAN_IN_BATCH_SIZE = TRANSACTION_MAX_ITEMS - 1
FAN_IN_BATCH_WINDOW_SECONDS = 1
FAN_IN_MAX_CONCURRENCY = 10
FAN_IN_MAX_RECEIVES = 5  # then the completion goes to the buffer's dead-letter queue
FAN_IN_CONSUMER_TIMEOUT_SECONDS = 60
FAN_IN_COUNT_TIMEOUT_SECONDS = 30

# Timeouts and defaults.
COMPUTE_TIMEOUT_SECONDS = 60
COMPUTE_SECONDS_AWS = 5.0  # the seed's simulated work
COMPUTE_SECONDS_EMBEDDED = 0.0
SUMMARY_TIMEOUT_SECONDS = 900  # Lambda's maximum: a million results rows are read and written in parts
# The summary. Up to SUMMARY_INLINE_CASES cases it holds the complete per-case list (`cases`, in
# request order); every summary lists at most SUMMARY_LIST_CAP failed, timed-out and never-emitted
# cases with their full counts, and the per-case results are stored beside it as JSON Lines in
# parts of RESULTS_PART_LINES lines (every case; and every case that did not succeed).
SUMMARY_INLINE_CASES = 10_000
SUMMARY_LIST_CAP = 1000
RESULTS_PART_LINES = 100_000
FANOUT_TIMEOUT_SECONDS = 120
# EventBridge invokes a Lambda target asynchronously; Lambda retries twice, so a case can
# take three compute timeouts before its failure is final. Plus room for queueing. This is the
# default deadline of a request that fits in one wave of the compute concurrency; each further
# wave adds three compute timeouts (lambda_fns.request_model.default_deadline_seconds).
COMPUTE_ATTEMPTS = 1 + COMPUTE_ASYNC_RETRIES
DEADLINE_SLACK_SECONDS = 300
DEFAULT_DEADLINE_SECONDS = COMPUTE_ATTEMPTS * COMPUTE_TIMEOUT_SECONDS + DEADLINE_SLACK_SECONDS
# The concurrency the default deadline assumes when Compute has no reserved ceiling: the
# default account limit (docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).
ACCOUNT_LAMBDA_CONCURRENCY = 1000
# A case may ask for a simulated compute time (computeSeconds); never more than this, so the
# sleep always ends before the function's timeout and the case reports its result.
MAX_CASE_COMPUTE_SECONDS = COMPUTE_TIMEOUT_SECONDS - 5
DEFAULT_RETENTION_DAYS = 7
# Deadlines and retention. Every record of a request expires at its deadline plus the retention
# at the earliest: the counter row and results rows carry expiresAt = deadline + retention, and
# manifests and summaries expire by a lifecycle rule `retention` days after they are written, so
# a deadline is bounded by the retention (less the time to close the request at its deadline)
# and, for the Standard PreProcess execution (at most one year), by a year less that time.
# Prepare enforces the deployed bound; the client checks the absolute one.
CLOSE_MARGIN_SECONDS = 3 * 3600  # the deadline's claim tries, Summary's runs (see below), and room to spare
STANDARD_EXECUTION_MAX_SECONDS = 365 * 86_400
MAX_DEADLINE_SECONDS = STANDARD_EXECUTION_MAX_SECONDS - 86_400  # a day for fan-out and closing


def max_deadline_seconds(retention_seconds: int) -> int:
    """The longest deadline a stack with this retention accepts."""
    return max(1, min(MAX_DEADLINE_SECONDS, retention_seconds - CLOSE_MARGIN_SECONDS))


# Summary exactly once. A claim (SUMMARIZING) older than this is stale: its Summary ran its
# retries out. Summary runs at most SUMMARY_ATTEMPTS times per invocation task, each at most its
# timeout; the task's throttle and service-error retries (infra/components/functions.py) wait
# about 15 minutes at most on top of that: a claim is stale only after all of it. This holds for
# every task that runs Summary with infra.components.summary.summary_task's retries.
SUMMARY_ATTEMPTS = 4
STALE_CLAIM_SECONDS = SUMMARY_ATTEMPTS * SUMMARY_TIMEOUT_SECONDS + 1200
# PreProcess's deadline close: it tries to claim the row at the deadline and, while another
# claim is fresh, again every CLAIM_RETRY_SECONDS, until the claim is stale (so a bounded
# number of tries, each a few history events: far from the 25,000-event limit).
CLAIM_RETRY_SECONDS = 120
CLAIM_ATTEMPTS = STALE_CLAIM_SECONDS // CLAIM_RETRY_SECONDS + 3

# Fan-out resilience: Emit retries refused entries a few times within an invocation; the batch
# then waits (exponential backoff with full jitter, in seconds) and resumes with the entries not
# yet accepted, up to FANOUT_ATTEMPTS times, before its remaining cases are given up.
FANOUT_ATTEMPTS = 8
FANOUT_BACKOFF_BASE_SECONDS = 2
FANOUT_BACKOFF_MAX_SECONDS = 60
RULE_TARGET_RETRY_ATTEMPTS = 185  # EventBridge's default and maximum
RULE_TARGET_MAX_EVENT_AGE_SECONDS = 86_400  # 24 hours, likewise
# The queue target: a worker keeps its case invisible to other workers by extending the
# visibility timeout every third of it while it works, so the timeout only bounds how long
# a dead worker's case waits before another worker gets it.
WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS = 60
# SQS keeps a received message invisible for at most 12 hours from its first receive, whatever
# ChangeMessageVisibility asks (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
# sqs-visibility-timeout.html): a worker's case is handed to another worker after that.
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
WORK_QUEUE_MAX_RECEIVES = 5  # then the message goes to the queue's dead-letter queue
WORKER_WAIT_SECONDS = 20  # SQS long polling, at its maximum

# Observability: the service name on every log line and metric, the CloudWatch namespace and
# the metrics the handlers emit (as EMF log lines) that the dashboard and alarms read.
SERVICE_NAME = "fanflow"
METRICS_NAMESPACE = "Fanflow"
METRIC_CASES_COMPLETED = "CasesCompleted"  # Compute: one per computation, whatever its outcome
METRIC_CASES_FAILED = "CasesFailed"  # Compute: 1 when the case failed, else 0 (its average is the failure rate)
METRIC_COMPUTE_DURATION = "ComputeDuration"  # Compute: milliseconds of work per case
METRIC_REQUESTS_COMPLETED = "RequestsCompleted"  # Summary: one per request closed, by status
METRIC_REQUEST_DURATION = "RequestDuration"  # Summary: seconds from the counter row's creation to its summary
METRIC_REQUESTS_REJECTED = "RequestsRejected"  # PreProcess: a request refused (invalid, or its requestId in use)
METRIC_CASES_EXPIRED = "CasesExpired"  # compute targets: cases received after their deadline, not computed
METRIC_CASES_NOT_EMITTED = "CasesNotEmitted"  # Emit: cases of a batch given up after the fan-out's retries
DIMENSION_SERVICE = "service"
DIMENSION_STATUS = "status"
# Share of requests X-Ray traces (each traced request is traced whole; see PipelineMonitoring).
DEFAULT_XRAY_SAMPLING_RATE = 0.05
# Set by the embedded runtime: handler logs go to this file instead of stdout.
ENV_LOG_FILE = "FANFLOW_LOG_FILE"
