"""Where a request runs: a deployment of the stack, which the user names with `--target`
(embedded, localstack or aws). In the code a deployment is a Deployment, so that "target" keeps
its other meanings apart: the number of cases a request waits for (the counter row's `target`,
constants.ATTR_EXPECTED), a compute backend (infra/components/compute_targets.py), and an
EventBridge rule's target. Every deployment gives the same thing: boto3 clients for the
deployed stack, its outputs, and (where it can be counted) how often Summary ran.

- embedded: the in-process emulator, deployed for the life of the run; or, when a
  `fanflow up` endpoint is running, that endpoint, reached by URL like any other target.
- localstack: LocalStack at $AWS_ENDPOINT_URL, else $LOCALSTACK_ENDPOINT, else
  http://localhost:4566, with LocalStack's test credentials.
- aws: the default boto3 session (AWS_PROFILE, environment, SSO, instance role...).
The remote targets find the stack through its CloudFormation outputs.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from lambda_fns import constants as c

from .errors import DeploymentError, NoEndpoint, UsageError

DEPLOYMENTS = ("embedded", "localstack", "aws")
REMOTE_DEPLOYMENTS = ("localstack", "aws")

# What botocore raises when a target stops answering (refused, reset, timed out).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (BotoConnectionError, HTTPClientError)

# LocalStack: the image that starts without an auth token (a token holder sets
# LOCALSTACK_IMAGE and LOCALSTACK_AUTH_TOKEN), and the services the stack and
# `cdk bootstrap` need. docker-compose.yml carries the same values (a test checks).
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
LOCALSTACK_DEFAULT_ENDPOINT = "http://localhost:4566"
LOCALSTACK_SERVICES = ("cloudformation", "cloudwatch", "dynamodb", "ecr", "events", "iam", "kms", "lambda", "logs",
                       "s3", "sns", "sqs", "ssm", "stepfunctions", "sts")
LOCALSTACK_CREDENTIALS = ("test", "test")  # what cdklocal uses: account 000000000000
DEFAULT_REGION = "us-east-1"


NO_ENDPOINT = ("no `fanflow up` endpoint is running, so the embedded target holds no requests: a `fanflow run` "
               "without one runs in a fresh in-process emulator that ends with it, and so would this command. "
               "Start one with `fanflow up` and run requests there, or use --target localstack/aws")


class Deployment(Protocol):
    name: str
    outputs: dict[str, str]
    where: str  # the target in messages
    in_process: bool  # the handlers run in this process (and the requests end with it)

    def client(self, service: str) -> Any: ...

    def summary_invocations(self, request_id: str) -> int | None: ...

    def fan_in_stats(self, request_id: str) -> dict[str, int] | None: ...

    def limits_report(self) -> dict[str, Any] | None: ...


KEEP_ALL_HISTORIES = "all"


@dataclass
class DeploymentOptions:
    """What a run asks of its target. The embedded target's own settings (Lambda concurrency,
    kept histories) are None when not given: a target that cannot honour a given one refuses it."""

    lambda_concurrency: int | None = None  # embedded only; default 1000
    compute_seconds: float | None = None  # in-process: the emulator's; elsewhere the caller sends it per case
    faults: Any = None  # local.faults.FaultPlan, embedded only
    kept_histories: int | str | None = None  # embedded only: a count or KEEP_ALL_HISTORIES; default 1000
    in_process: bool = True  # False: an embedded target must be a running `fanflow up` endpoint
    notice: Callable[[str], None] | None = None  # told what the target does that the caller should know
    fan_in_batching: dict[str, int] | None = None  # embedded only: batch_size, window_seconds
    aws_limits: str | None = None  # embedded only: run under this Region's published limits
    time_scale: float | None = None  # embedded only, with aws_limits: that many times slower than AWS

    def tell(self, message: str) -> None:
        if self.notice is not None:
            self.notice(message)

    def emulator_kept_histories(self) -> int | None:
        from local.runtime import DEFAULT_KEPT_HISTORIES

        if self.kept_histories is None:
            return DEFAULT_KEPT_HISTORIES
        return None if self.kept_histories == KEEP_ALL_HISTORIES else int(self.kept_histories)

    def embedded_settings(self) -> dict[str, Any]:
        """The embedded-only settings given, by option name."""
        batching = self.fan_in_batching or {}
        given = {"--lambda-concurrency": self.lambda_concurrency, "--kept-histories": self.kept_histories,
                 "--fan-in-batch-size": batching.get("batch_size"), "--fan-in-window": batching.get("window_seconds"),
                 "--aws-limits": self.aws_limits, "--time-scale": self.time_scale}
        return {name: value for name, value in given.items() if value is not None}


class EmbeddedDeployment:
    """The in-process emulator, deployed for the life of the context."""

    name = "embedded"
    where = "the in-process embedded target"
    in_process = True

    def __init__(self, options: DeploymentOptions) -> None:
        from local.runtime import EmbeddedEmulator

        self.emulator = EmbeddedEmulator(
            lambda_concurrency=options.lambda_concurrency or 1000,
            compute_seconds=c.COMPUTE_SECONDS_EMBEDDED if options.compute_seconds is None else options.compute_seconds,
            faults=options.faults,
            kept_histories=options.emulator_kept_histories(),
            aws_limits=options.aws_limits,
            time_scale=options.time_scale or 1.0,
        )
        self.outputs: dict[str, str] = {}
        self._workers = contextlib.ExitStack()
        self._options = options

    def start(self) -> None:
        from local.assembly import assembly_is_current

        from .worker import embedded_workers

        if not assembly_is_current():
            self._options.tell("synthesizing the CDK app (the first run, or its sources changed): about 10 s")
        self._options.tell("starting the embedded target in this process (deploying the stack into it)")
        if self._options.aws_limits:
            self._options.tell(f"under {self._options.aws_limits}'s published AWS limits, in real time")
        from local.aws_limits.enforce import LimitsError

        try:
            self.emulator.start()
        except LimitsError as exc:
            raise UsageError(f"--aws-limits: {exc}") from None
        self.outputs = self.emulator.outputs
        if self._options.fan_in_batching:
            self.emulator.set_fan_in_batching(**self._options.fan_in_batching)
        # The queue compute target's cases need workers: threads polling the emulator's queue.
        if c.OUTPUT_WORK_QUEUE_URL in self.outputs:
            self._workers.enter_context(embedded_workers(self.emulator))

    def stop(self) -> None:
        self._workers.close()
        self.emulator.stop()

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    def summary_invocations(self, request_id: str) -> int | None:
        return self.emulator.summary_invocations(request_id)

    def fan_in_stats(self, request_id: str) -> dict[str, int] | None:
        return self.emulator.fan_in_stats(request_id)

    def limits_report(self) -> dict[str, Any] | None:
        return self.emulator.limits.report() if self.emulator.limits is not None else None


class RemoteDeployment:
    """A deployed stack reached through boto3 only: LocalStack, AWS, or a `fanflow up`
    endpoint."""

    in_process = False

    def __init__(self, name: str, session: Any, *, endpoint_url: str | None = None, where: str = "") -> None:
        from botocore.config import Config

        self.name = name
        self.session = session
        self.endpoint_url = endpoint_url
        self.where = where or name
        self._config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)
        self._clients: dict[str, Any] = {}
        self.outputs: dict[str, str] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=self._config)
        return self._clients[service]

    def load_outputs(self) -> dict[str, str]:
        try:
            self.outputs = stack_outputs_or_explain(self.client("cloudformation"), self.name, self.where)
        except NotAnAwsResponse:
            what = "LocalStack" if self.name == "localstack" else "an AWS endpoint"
            fix = ": point LOCALSTACK_ENDPOINT (or AWS_ENDPOINT_URL) at LocalStack" if self.name == "localstack" else ""
            raise DeploymentError(f"something answers at {self.endpoint_url or self.where}, but it is not {what} (its "
                              f"answer to CloudFormation's DescribeStacks is not an AWS response){fix}") from None
        return self.outputs

    def summary_invocations(self, request_id: str) -> int | None:
        return None  # the handlers run elsewhere; nothing here counts them

    def fan_in_stats(self, request_id: str) -> dict[str, int] | None:
        return None  # the engine is elsewhere: the counter row's own figures stand

    def limits_report(self) -> dict[str, Any] | None:
        return None  # what AWS's limits did is in the target's own metrics


class EndpointDeployment(RemoteDeployment):
    """A `fanflow up` endpoint: remote by URL, and it can count Summary runs."""

    def summary_invocations(self, request_id: str) -> int | None:
        from local.server import summary_invocations

        assert self.endpoint_url is not None
        return summary_invocations(self.endpoint_url, request_id)


# A stack in any other status (being created or deleted, rolled back, failed) cannot serve.
USABLE_STACK_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_IN_PROGRESS",
                                   "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
                                   "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})


class NotAnAwsResponse(DeploymentError):
    """What answered is not an AWS API (any web server at the endpoint's address)."""


def stack_outputs_or_explain(cloudformation: Any, target: str, where: str | None = None) -> dict[str, str]:
    """The Fanflow stack's outputs; a DeploymentError naming the fix when it is not deployed."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    where = where or target
    try:
        stack = cloudformation.describe_stacks(StackName=c.STACK_NAME)["Stacks"][0]
    except (ResponseParserError, KeyError, IndexError, TypeError, ValueError) as exc:
        # botocore could not read the answer as CloudFormation's (a web page, say)
        raise NotAnAwsResponse(f"{where} gave DescribeStacks an answer that is not CloudFormation's: "
                               f"{type(exc).__name__}: {exc}") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise DeploymentError(f"stack {c.STACK_NAME} is not deployed on {where}: "
                              f"run fanflow deploy --target {target}") from None
        raise DeploymentError(f"cannot read stack {c.STACK_NAME} on {where}: {exc}") from None
    status = stack.get("StackStatus", "")
    if status not in USABLE_STACK_STATUSES:
        raise DeploymentError(f"stack {c.STACK_NAME} on {where} is {status}, not usable: "
                          f"run fanflow deploy --target {target}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# -- LocalStack -----------------------------------------------------------------------------
def localstack_endpoint() -> str:
    return (os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("LOCALSTACK_ENDPOINT")
            or LOCALSTACK_DEFAULT_ENDPOINT).rstrip("/")


def target_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def check_localstack(endpoint: str, timeout: float = 3.0) -> None:
    """Raise a DeploymentError quickly when nothing answers at `endpoint`. Any HTTP answer
    counts as reachable: what answers, and what is deployed there, is checked through
    CloudFormation (RemoteDeployment.load_outputs)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # something answers HTTP there
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeploymentError(
            f"LocalStack is not reachable at {endpoint} ({reason}): start it with `docker compose up -d --wait` "
            f"(needs a running Docker engine{docker_hint()}), or point LOCALSTACK_ENDPOINT at it"
        ) from None


def docker_engine_error(timeout: float = 2.0) -> Exception | None:
    """What stops the use of a Docker engine here (ImportError without the docker package),
    or None when an engine answers."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker raises several kinds for "no engine"
        return exc
    return None


def docker_hint(timeout: float = 2.0) -> str:
    """Why Docker cannot help, when it cannot: '' when an engine answers."""
    exc = docker_engine_error(timeout)
    if exc is None or isinstance(exc, ImportError):
        return ""
    return f"; no Docker engine is reachable here: {type(exc).__name__}"


def localstack_session() -> Any:
    import boto3

    key, secret = LOCALSTACK_CREDENTIALS
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=target_region())


def open_localstack() -> RemoteDeployment:
    endpoint = localstack_endpoint()
    check_localstack(endpoint)
    target = RemoteDeployment("localstack", localstack_session(), endpoint_url=endpoint,
                          where=f"localstack ({endpoint})")
    target.load_outputs()
    return target


# -- AWS -------------------------------------------------------------------------------------
def aws_session() -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        # botocore reads AWS_DEFAULT_REGION and the profile; the CDK CLI also AWS_REGION.
        return boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
    except ProfileNotFound as exc:
        raise DeploymentError(f"no usable AWS credentials: {exc}") from None


def check_aws_credentials(session: Any) -> tuple[str, str]:
    """(account, region) of the caller, checked with `sts get-caller-identity`; a
    DeploymentError saying what is missing otherwise."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    region = session.region_name
    if not region:
        raise DeploymentError("no AWS region configured: set AWS_REGION (or a region in your AWS profile)")
    try:
        sts = session.client("sts", config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}))
        identity = sts.get_caller_identity()
    except CONNECTION_ERRORS as exc:
        raise DeploymentError(f"cannot reach AWS STS to check the credentials (a network failure, not a credentials "
                          f"one: {exc}): check the network, a proxy (HTTPS_PROXY) or AWS_ENDPOINT_URL") from None
    except NoCredentialsError:
        raise DeploymentError("no AWS credentials found (checked with sts get-caller-identity): configure a profile "
                          "and set AWS_PROFILE, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except (ClientError, BotoCoreError) as exc:
        raise DeploymentError(f"AWS credentials were rejected or unusable (sts get-caller-identity: {exc})") from None
    return str(identity["Account"]), str(region)


def open_aws() -> RemoteDeployment:
    session = aws_session()
    account, region = check_aws_credentials(session)
    target = RemoteDeployment("aws", session, where=f"aws (account {account}, region {region})")
    target.load_outputs()
    return target


# -- embedded endpoint -----------------------------------------------------------------------
def open_endpoint(state: Any) -> EndpointDeployment:
    import boto3

    from local.server import ACCESS_KEY

    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=ACCESS_KEY,
                                    region_name=state.region)
    target = EndpointDeployment("embedded", session, endpoint_url=state.url,
                            where=f"the embedded endpoint at {state.url}")
    target.load_outputs()
    return target


def find_endpoint(options: DeploymentOptions) -> tuple[Any, dict[str, Any]] | None:
    """The running `fanflow up` endpoint (its state and what it says about itself), or None.
    An endpoint that stopped without removing its state file is reported, and its file removed;
    one that runs but does not answer is an error, not a reason to run elsewhere."""
    from local.server import describe_endpoint, endpoint_file, forget_endpoint, read_state

    state = read_state()
    if state is None:
        return None
    answer, alive = describe_endpoint(state)
    if answer is not None:
        return state, answer
    if alive:
        raise DeploymentError(f"the `fanflow up` endpoint at {state.url} (pid {state.pid}) runs but does not answer: "
                          "wait for it, or stop it with `fanflow down`")
    forget_endpoint(state)
    options.tell(f"the `fanflow up` endpoint at {state.url} (pid {state.pid}, recorded in {endpoint_file()}) has "
                 "stopped, and the requests it held are gone with it")
    return None


def check_embedded_settings(options: DeploymentOptions, where: str, endpoint: dict[str, Any] | None) -> None:
    """UsageError for an embedded-only setting that the target cannot honour: any of them
    off the embedded target; on an endpoint, one that differs from its own."""
    for option, value in options.embedded_settings().items():
        if endpoint is None:
            raise UsageError(f"{option} applies to the embedded target only; {where} has its own")
        key = {"--lambda-concurrency": "lambdaConcurrency", "--kept-histories": "keptHistories",
               "--fan-in-batch-size": "fanInBatchSize", "--fan-in-window": "fanInWindow",
               "--aws-limits": "awsLimits", "--time-scale": "timeScale"}[option]
        wanted = None if value == KEEP_ALL_HISTORIES else value
        if key not in endpoint or endpoint[key] != wanted:
            has = endpoint.get(key, "unknown")
            if has is None and option != "--kept-histories":
                started = f"without {option}"
            else:
                started = f"with {option} {KEEP_ALL_HISTORIES if has is None else has}"
            raise UsageError(f"{option} {value} cannot apply to {where}: it was started {started}. Restart it "
                             f"with `fanflow up {option} {value}`, or stop it (`fanflow down`) to run in-process")


@contextlib.contextmanager
def open_deployment(name: str, options: DeploymentOptions | None = None) -> Iterator[Deployment]:
    """The target to run on. An embedded run goes to a running `fanflow up` endpoint when
    there is one, else in-process (unless `options.in_process` is False: then NoEndpoint)."""
    options = options or DeploymentOptions()
    if name not in DEPLOYMENTS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(DEPLOYMENTS)}")
    remote: RemoteDeployment | None = None
    if name in REMOTE_DEPLOYMENTS:
        check_embedded_settings(options, name, None)
        remote = open_localstack() if name == "localstack" else open_aws()
    elif options.faults is not None and options.faults.active:
        # Fault injection needs the handlers in this process: it always runs in-process.
        from local.server import read_state

        recorded = read_state()
        if recorded is not None:
            options.tell(f"fault injection runs in this process, where the handlers run, not on the `fanflow up` "
                         f"endpoint at {recorded.url}")
    else:
        # A running `fanflow up` endpoint serves embedded runs.
        found = find_endpoint(options)
        if found is not None:
            state, answer = found
            check_embedded_settings(options, f"the embedded endpoint at {state.url}", answer)
            remote = open_endpoint(state)
            options.tell(f"using the `fanflow up` endpoint at {state.url}: requests there outlive this command")
            if answer.get("awsLimits"):
                scale = answer.get("timeScale") or 1
                options.tell(f"the endpoint runs under {answer['awsLimits']}'s published AWS limits"
                             + (f", {scale:g} times slower than AWS" if scale != 1 else ", in real time"))
    if remote is not None:
        yield remote
        return
    if not options.in_process:
        raise NoEndpoint(NO_ENDPOINT)
    target = EmbeddedDeployment(options)
    target.start()
    try:
        yield target
    finally:
        target.stop()
