"""Where a request runs. Every target gives the same thing: boto3 clients for the
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
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from lambda_fns import constants as c

from .client import RequestFailed

TARGETS = ("embedded", "localstack", "aws")
REMOTE_TARGETS = ("localstack", "aws")

# LocalStack: the image that starts without an auth token (a token holder sets
# LOCALSTACK_IMAGE and LOCALSTACK_AUTH_TOKEN), and the services the stack and
# `cdk bootstrap` need. docker-compose.yml carries the same values (a test checks).
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
LOCALSTACK_DEFAULT_ENDPOINT = "http://localhost:4566"
LOCALSTACK_SERVICES = ("cloudformation", "cloudwatch", "dynamodb", "ecr", "events", "iam", "kms", "lambda", "logs",
                       "s3", "sns", "sqs", "ssm", "stepfunctions", "sts")
LOCALSTACK_CREDENTIALS = ("test", "test")  # what cdklocal uses: account 000000000000
DEFAULT_REGION = "us-east-1"


class TargetError(RequestFailed):
    """A target cannot be used (not running, no credentials, stack not deployed); the
    message says why and what to do."""


class Target(Protocol):
    name: str
    outputs: dict[str, str]

    def client(self, service: str) -> Any: ...

    def summary_invocations(self, request_id: str) -> int | None: ...

    def set_compute_seconds(self, seconds: float) -> None: ...


@dataclass
class TargetOptions:
    lambda_concurrency: int = 1000
    compute_seconds: float | None = None
    faults: Any = None  # local.faults.FaultPlan, embedded only
    kept_histories: int | None = 1000  # embedded only: see local.runtime.DEFAULT_KEPT_HISTORIES


class EmbeddedTarget:
    """The in-process emulator, deployed for the life of the context."""

    name = "embedded"

    def __init__(self, options: TargetOptions) -> None:
        from local.runtime import EmbeddedEmulator

        self.emulator = EmbeddedEmulator(
            lambda_concurrency=options.lambda_concurrency,
            compute_seconds=c.COMPUTE_SECONDS_EMBEDDED if options.compute_seconds is None else options.compute_seconds,
            faults=options.faults,
            kept_histories=options.kept_histories,
        )
        self.outputs: dict[str, str] = {}
        self._workers = contextlib.ExitStack()

    def start(self) -> None:
        from .worker import embedded_workers

        self.emulator.start()
        self.outputs = self.emulator.outputs
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

    def set_compute_seconds(self, seconds: float) -> None:
        self.emulator.set_compute_seconds(seconds)


class RemoteTarget:
    """A deployed stack reached through boto3 only: LocalStack, AWS, or a `fanflow up`
    endpoint."""

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
        self.outputs = stack_outputs_or_explain(self.client("cloudformation"), self.name, self.where)
        return self.outputs

    def summary_invocations(self, request_id: str) -> int | None:
        return None  # the handlers run elsewhere; nothing here counts them

    def set_compute_seconds(self, seconds: float, *, timeout: float = 120.0) -> None:
        """`aws lambda update-function-configuration` on each compute function, waiting until
        the update is applied (new invocations then cold-start with the new value)."""
        for name in self.outputs.get(c.OUTPUT_COMPUTE_FUNCTIONS, self.outputs[c.OUTPUT_COMPUTE_FUNCTION]).split(","):
            self._set_compute_seconds(name, seconds, timeout=timeout)

    def _set_compute_seconds(self, name: str, seconds: float, *, timeout: float) -> None:
        lam = self.client("lambda")
        env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        if env.get(c.ENV_COMPUTE_SECONDS) == str(seconds):
            return
        env[c.ENV_COMPUTE_SECONDS] = str(seconds)
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        deadline = time.monotonic() + timeout
        while lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus") == "InProgress":
            if time.monotonic() > deadline:
                raise TargetError(f"the update of {name}'s {c.ENV_COMPUTE_SECONDS} on {self.where} "
                                  f"did not finish within {timeout:.0f} s")
            time.sleep(1.0)


class EndpointTarget(RemoteTarget):
    """A `fanflow up` endpoint: remote by URL, and it can count Summary runs."""

    def summary_invocations(self, request_id: str) -> int | None:
        from local.server import summary_invocations

        assert self.endpoint_url is not None
        return summary_invocations(self.endpoint_url, request_id)


# A stack in any other status (being created or deleted, rolled back, failed) cannot serve.
USABLE_STACK_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_IN_PROGRESS",
                                   "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
                                   "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})


def stack_outputs_or_explain(cloudformation: Any, target: str, where: str | None = None) -> dict[str, str]:
    """The Fanflow stack's outputs; a TargetError naming the fix when it is not deployed."""
    from botocore.exceptions import ClientError

    where = where or target
    try:
        stack = cloudformation.describe_stacks(StackName=c.STACK_NAME)["Stacks"][0]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise TargetError(f"stack {c.STACK_NAME} is not deployed on {where}: "
                              f"run fanflow deploy --target {target}") from None
        raise TargetError(f"cannot read stack {c.STACK_NAME} on {where}: {exc}") from None
    status = stack.get("StackStatus", "")
    if status not in USABLE_STACK_STATUSES:
        raise TargetError(f"stack {c.STACK_NAME} on {where} is {status}, not usable: "
                          f"run fanflow deploy --target {target}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# -- LocalStack -----------------------------------------------------------------------------
def localstack_endpoint() -> str:
    return (os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("LOCALSTACK_ENDPOINT")
            or LOCALSTACK_DEFAULT_ENDPOINT).rstrip("/")


def target_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def check_localstack(endpoint: str, timeout: float = 3.0) -> None:
    """Raise a TargetError quickly when nothing answers at `endpoint`. Any HTTP answer
    counts as reachable (what is deployed there is checked through CloudFormation)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # something answers HTTP there
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TargetError(
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


def open_localstack() -> RemoteTarget:
    endpoint = localstack_endpoint()
    check_localstack(endpoint)
    target = RemoteTarget("localstack", localstack_session(), endpoint_url=endpoint,
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
        raise TargetError(f"no usable AWS credentials: {exc}") from None


def check_aws_credentials(session: Any) -> tuple[str, str]:
    """(account, region) of the caller, checked with `sts get-caller-identity`; a
    TargetError saying what is missing otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    region = session.region_name
    if not region:
        raise TargetError("no AWS region configured: set AWS_REGION (or a region in your AWS profile)")
    try:
        identity = session.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise TargetError("no AWS credentials found (checked with sts get-caller-identity): configure a profile "
                          "and set AWS_PROFILE, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(f"AWS credentials were rejected or unusable (sts get-caller-identity: {exc})") from None
    return str(identity["Account"]), str(region)


def open_aws() -> RemoteTarget:
    session = aws_session()
    account, region = check_aws_credentials(session)
    target = RemoteTarget("aws", session, where=f"aws (account {account}, region {region})")
    target.load_outputs()
    return target


# -- embedded endpoint -----------------------------------------------------------------------
def open_endpoint(state: Any) -> EndpointTarget:
    import boto3

    from local.server import ACCESS_KEY

    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=ACCESS_KEY,
                                    region_name=state.region)
    target = EndpointTarget("embedded", session, endpoint_url=state.url,
                            where=f"the embedded endpoint at {state.url}")
    target.load_outputs()
    return target


@contextlib.contextmanager
def open_target(name: str, options: TargetOptions | None = None) -> Iterator[Target]:
    options = options or TargetOptions()
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    remote: RemoteTarget | None = None
    if name == "localstack":
        remote = open_localstack()
    elif name == "aws":
        remote = open_aws()
    elif not (options.faults is not None and options.faults.active):
        # A running `fanflow up` endpoint serves embedded runs; fault injection needs the
        # handlers in this process, so it always runs in-process.
        from local.server import running_endpoint

        state = running_endpoint()
        if state is not None:
            remote = open_endpoint(state)
    if remote is not None:
        if options.compute_seconds is not None:
            remote.set_compute_seconds(options.compute_seconds)
        yield remote
        return
    target = EmbeddedTarget(options)
    target.start()
    try:
        yield target
    finally:
        target.stop()
