"""Commands that put the stack somewhere: `deploy` / `destroy` on LocalStack or AWS (the
pinned CDK CLI from package.json, through npx: cdklocal for LocalStack, cdk for AWS), and
`up` / `down` for the embedded emulator as a long-lived local endpoint."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambda_fns import constants as c

from .. import options
from ..deployments import (
    REMOTE_DEPLOYMENTS,
    RemoteDeployment,
    aws_session,
    check_aws_credentials,
    check_localstack,
    localstack_endpoint,
    open_aws,
    open_localstack,
    target_region,
)
from ..errors import DeploymentError

if TYPE_CHECKING:
    from local.faults import FaultPlan

ROOT = Path(__file__).resolve().parents[1]
INFRA_DIR = ROOT / "infra"
CDK_TOOLS = {"localstack": "cdklocal", "aws": "cdk"}
UP_EXAMPLES = """examples:
  fanflow up --detach                               serve in the background on 127.0.0.1:4599
  fanflow up --port 4701 --compute-seconds 0.5      another port, 0.5 s of simulated work per case
  fanflow up --failure-rate 0.2 --seed 7 --detach   every request it runs: a fifth of the cases fail
"""
DEPLOY_EXAMPLES = """examples:
  docker compose up -d --wait && fanflow deploy --target localstack
  fanflow deploy --target aws -c computeSeconds=0.5     (AWS_PROFILE selects the account)
  fanflow deploy --target localstack --dry-run          print the commands only
"""


def register(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy", help="deploy the stack to LocalStack or AWS (cdklocal / cdk bootstrap + deploy)",
        description="Bootstrap the environment and deploy the Fanflow stack with the CDK CLI pinned in "
        "package.json (run `npm install` once). LocalStack: `cdklocal` against $AWS_ENDPOINT_URL, else "
        "$LOCALSTACK_ENDPOINT, else http://localhost:4566. AWS: `cdk` with the default credentials "
        "(AWS_PROFILE or the environment), checked first.",
        epilog=DEPLOY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_argument(deploy)
    deploy.add_argument("--compute-seconds", type=options.COMPUTE_SECONDS, metavar="S",
                        help=f"simulated work per case, 0-{c.COMPUTE_TIMEOUT_SECONDS} (the compute timeout), as "
                        f"-c computeSeconds=S (default: {c.COMPUTE_SECONDS_AWS:g})")
    deploy.add_argument("--retention-days", type=options.RETENTION_DAYS, metavar="D",
                        help="days request state is kept, 1-3650, as -c retentionDays=D "
                        f"(default: {c.DEFAULT_RETENTION_DAYS})")
    deploy.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="further CDK context, passed on as -c KEY=VALUE")
    deploy.add_argument("--skip-bootstrap", action="store_true",
                        help="do not run `cdk bootstrap` first (the environment is bootstrapped already)")
    deploy.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    deploy.set_defaults(handler=cmd_deploy)

    destroy = commands.add_parser(
        "destroy", help="delete the stack from LocalStack or AWS (cdklocal / cdk destroy)",
        description="Empty the stack's artifacts bucket (summaries, manifests) and delete the Fanflow stack. "
        "The CDK bootstrap stack (CDKToolkit) is left in place. --dry-run lists both steps.",
    )
    _target_argument(destroy)
    destroy.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    destroy.set_defaults(handler=cmd_destroy)

    from local.server import DEFAULT_PORT

    up = commands.add_parser(
        "up", help="serve the embedded emulator as a local endpoint until stopped",
        description="Deploy the stack into the embedded emulator and serve it over HTTP on 127.0.0.1 (any AWS "
        "client can use it as its endpoint URL) until SIGINT/SIGTERM or `fanflow down`. While it runs, "
        "`fanflow run --target embedded` uses it.",
        epilog=UP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--port", type=options.integer(0, 65535), default=DEFAULT_PORT,
                    help="port on 127.0.0.1, 0-65535 (default: %(default)s; LocalStack uses 4566; 0 picks a free one)")
    up.add_argument("--compute-seconds", type=options.COMPUTE_SECONDS, default=c.COMPUTE_SECONDS_EMBEDDED,
                    metavar="S", help=f"simulated work per case, 0-{c.COMPUTE_TIMEOUT_SECONDS}, for runs that do not "
                    "set their own with `fanflow run --compute-seconds` (default: %(default)s)")
    up.add_argument("--lambda-concurrency", type=options.LAMBDA_CONCURRENCY, default=1000, metavar="N",
                    help="Lambda executions the endpoint runs at once, 2-10000 (a fan-in batch takes two while "
                    "it counts; default: %(default)s)")
    up.add_argument("--kept-histories", type=options.integer(0), metavar="N",
                    help="succeeded executions per state machine whose history the endpoint keeps (default: 1000)")
    up.add_argument("--fan-in-batch-size", type=options.integer(1, 10_000), metavar="N",
                    help=f"completions counted per batch, 1-10000 (default: {c.FAN_IN_BATCH_SIZE})")
    up.add_argument("--fan-in-window", type=options.integer(0, 300), metavar="SECONDS",
                    help=f"longest wait for a fan-in batch to fill, 0-300 (default: {c.FAN_IN_BATCH_WINDOW_SECONDS})")
    options.add_aws_limits(up, what="the endpoint")
    _fault_arguments(up)
    up.add_argument("--detach", action="store_true", help="start in the background and return once it serves")
    up.add_argument("--start-timeout", type=options.SECONDS, default=300.0, metavar="SECONDS",
                    help="with --detach: how long to wait for it to serve (default: %(default)s)")
    up.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # the process --detach starts
    up.set_defaults(handler=cmd_up)

    down = commands.add_parser(
        "down", help="stop the endpoint `fanflow up` started",
        description="Stop the `fanflow up` endpoint the state file names (SIGTERM, then wait), and remove the "
        "file. The requests it held are gone with it. Does nothing, and says so, when none is running.")
    down.add_argument("--timeout", type=options.SECONDS, default=30.0, metavar="SECONDS",
                      help="how long to wait for it to stop (default: %(default)s)")
    down.set_defaults(handler=cmd_down)


# `fanflow up`'s fault options: `fanflow run`'s (same names, ranges and validators), applied to
# every request the endpoint runs, and described in its health answer.
FAULT_OPTIONS = (("--duplicate-rate", "duplicate_rate"), ("--failure-rate", "failure_rate"),
                 ("--drop-rate", "drop_rate"), ("--conflict-rate", "conflict_rate"))


def _fault_arguments(up: argparse.ArgumentParser) -> None:
    faults = up.add_argument_group(
        "fault injection (into every request the endpoint runs)",
        "As `fanflow run`'s: each choice is drawn from --seed, the kind of fault and the caseId only. The case "
        "faults (duplicate, failure, drop) apply to a case's first attempt only, so that a redrive of a "
        "request's failed cases (attempt 2, 3, ...) runs clean, unless --faults-every-attempt; conflicts apply "
        "to every counting transaction. A `fanflow run` with fault options of its own still runs in-process.")
    options.add_fault_options(faults, drop_note="the request then ends TIMED_OUT at its deadline")
    faults.add_argument("--faults-every-attempt", action="store_true",
                        help="inject the case faults into every attempt of a case, each drawn afresh, not only "
                        "into its first")


def fault_plan(args: argparse.Namespace) -> FaultPlan:
    """The endpoint's local.faults.FaultPlan from `fanflow up`'s options."""
    from local.faults import FaultPlan

    return FaultPlan(**{name: getattr(args, name) for _, name in FAULT_OPTIONS}, seed=args.seed,
                     every_attempt=args.faults_every_attempt)


def fault_arguments(args: argparse.Namespace) -> list[str]:
    """`fanflow up`'s fault options as given, for the command line of the process --detach starts."""
    given = [arg for option, name in FAULT_OPTIONS if getattr(args, name)
             for arg in (option, repr(getattr(args, name)))]
    if given or args.seed:
        given += ["--seed", str(args.seed)]
    return given + (["--faults-every-attempt"] if args.faults_every_attempt else [])


def describe_faults(plan: FaultPlan) -> str:
    """The endpoint's fault injection in one line's words, '' when it injects none."""
    if not plan.active:
        return ""
    rates = ", ".join(f"{option} {getattr(plan, name):g}" for option, name in FAULT_OPTIONS if getattr(plan, name))
    attempts = "every attempt" if plan.every_attempt else "first attempts only"
    return f"injecting faults: {rates}, --seed {plan.seed} ({attempts})"


def _target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=REMOTE_DEPLOYMENTS, required=True,
                        help="localstack or aws (the embedded target deploys itself on each run, or with `fanflow up`)")


# -- deploy / destroy ------------------------------------------------------------------------
def check_cdk_tools(target: str, root: Path = ROOT) -> str:
    """The npx to run the pinned CDK CLI with; a DeploymentError saying what to install otherwise."""
    npx = shutil.which("npx")
    if npx is None:
        raise DeploymentError(f"npx was not found: install Node.js {MIN_NODE_MAJOR} or later (with npm), "
                          f"then run `npm install` in {root}")
    tool = root / "node_modules" / ".bin" / CDK_TOOLS[target]
    if not tool.exists():
        raise DeploymentError(f"the pinned CDK CLI is not installed (no node_modules/.bin/{CDK_TOOLS[target]}): "
                          f"run `npm install` in {root}")
    return npx


def context_arguments(compute_seconds: float | None = None, retention_days: int | None = None,
                      extra: list[str] | None = None) -> list[str]:
    pairs = []
    if compute_seconds is not None:
        pairs.append(f"computeSeconds={compute_seconds:g}")
    if retention_days is not None:
        pairs.append(f"retentionDays={retention_days}")
    for item in extra or []:
        if "=" not in item:
            raise DeploymentError(f"-c expects KEY=VALUE, got {item!r}")
        pairs.append(item)
    return [arg for pair in pairs for arg in ("-c", pair)]


def app_command() -> str:
    """infra/cdk.json says `python app.py`; run it with this interpreter, whose environment
    has the CDK libraries."""
    return f"{shlex.quote(sys.executable)} app.py"


def cdk_commands(target: str, action: str, *, context: list[str] | None = None,
                 bootstrap: bool = True) -> list[list[str]]:
    tool = ["npx", "--no-install", CDK_TOOLS[target]]
    common = ["--app", app_command(), "--no-notices", *(context or [])]
    if action == "destroy":
        return [[*tool, "destroy", c.STACK_NAME, "--force", "--app", app_command(), "--no-notices"]]
    commands = [[*tool, "bootstrap", *common]] if bootstrap else []
    commands.append([*tool, "deploy", c.STACK_NAME, "--require-approval", "never", *common])
    return commands


# The oldest Node.js major version the CDK's jsii runtime (which runs the CDK libraries for
# this Python app) still supports; older ones make it print an end-of-life banner.
MIN_NODE_MAJOR = 22


def node_major() -> int | None:
    """The major version of the `node` on PATH, or None when there is none."""
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def node_note(major: int | None) -> str | None:
    """A one-line note when Node.js is older than the CDK supports; None when it is fine."""
    if major is None or major >= MIN_NODE_MAJOR:
        return None
    return (f"Node.js {major} is past its end of life for the CDK (jsii supports Node.js {MIN_NODE_MAJOR} and "
            "later); it still works for now: upgrade Node.js when you can")


def cdk_environment(target: str, *, endpoint: str | None = None, region: str | None = None,
                    base: dict[str, str] | None = None, node: int | None = None) -> dict[str, str]:
    """The environment for the CDK CLI. cdklocal (for CDK CLI >= 2.177) drops AWS_* settings
    except the endpoints and an allowlist, and insists on AWS_ENDPOINT_URL_S3 when
    AWS_ENDPOINT_URL is set: the endpoint is given for both, S3 path-style (no DNS needed),
    and the region is kept so that the stack lands where `--target localstack` looks."""
    env = dict(os.environ if base is None else base)
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    if node_note(node) is not None:
        # jsii's banner for an end-of-life Node.js comes out of the Python app as byte strings, a
        # screenful per command; fanflow says it in one line instead (node_note). The variable
        # lists the major versions to keep quiet about.
        name = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
        quiet = {version.strip() for version in env.get(name, "").split(",") if version.strip()}
        env[name] = ",".join(sorted(quiet | {str(node)}))
    if target == "localstack":
        endpoint = endpoint or localstack_endpoint()
        region = region or target_region()
        env["AWS_ENDPOINT_URL"] = endpoint
        env.setdefault("AWS_ENDPOINT_URL_S3", endpoint)
        env["AWS_S3_FORCE_PATH_STYLE"] = "1"
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        allowed = {name for name in env.get("AWS_ENVAR_ALLOWLIST", "").split(",") if name.strip()}
        env["AWS_ENVAR_ALLOWLIST"] = ",".join(sorted(allowed | {"AWS_REGION", "AWS_DEFAULT_REGION"}))
    return env


def preflight(target: str) -> str:
    """Check what the CDK CLI will need before running it; returns where it deploys."""
    if target == "localstack":
        endpoint = localstack_endpoint()
        check_localstack(endpoint)
        return f"localstack ({endpoint}, region {target_region()})"
    account, region = check_aws_credentials(aws_session())
    return f"aws (account {account}, region {region})"


def run_commands(commands: list[list[str]], env: dict[str, str]) -> None:
    for command in commands:
        print(f"$ (cd infra && {shlex.join(command)})", file=sys.stderr, flush=True)
        try:
            result = subprocess.run(command, cwd=INFRA_DIR, env=env, check=False)
        except FileNotFoundError as exc:
            raise DeploymentError(f"cannot run {command[0]}: {exc.strerror}") from None
        if result.returncode != 0:
            raise DeploymentError(f"`{' '.join(command[2:4])}` failed (exit {result.returncode}); its output is above")


def _prepare(args: argparse.Namespace, commands: list[list[str]],
             steps: tuple[str, ...] = ()) -> tuple[dict[str, str], str] | None:
    """The CDK tools' environment and where they will act, or None after a --dry-run plan
    (which lists `steps`, what fanflow itself does first, as comments)."""
    check_cdk_tools(args.target)
    node = node_major()
    env = cdk_environment(args.target, node=node)
    if args.dry_run:
        _print_plan(args.target, commands, env, steps)
        return None
    note = node_note(node)
    if note is not None:
        print(f"fanflow: note: {note}", file=sys.stderr)
    return env, preflight(args.target)


def _open_deployed(target: str) -> RemoteDeployment:
    return open_localstack() if target == "localstack" else open_aws()


def cmd_deploy(args: argparse.Namespace) -> int:
    context = context_arguments(args.compute_seconds, args.retention_days, args.context)
    commands = cdk_commands(args.target, "deploy", context=context, bootstrap=not args.skip_bootstrap)
    prepared = _prepare(args, commands)
    if prepared is None:
        return 0
    env, where = prepared
    print(f"deploying {c.STACK_NAME} to {where}", file=sys.stderr)
    run_commands(commands, env)
    target = _open_deployed(args.target)
    print(f"{c.STACK_NAME} is deployed on {target.where}:")
    for key, value in sorted(target.outputs.items()):
        print(f"  {key} = {value}")
    print(f"run a request: fanflow run --target {args.target} sample_data_sets/dataset_100.json")
    return 0


EMPTY_BUCKET_STEP = (f"empty the artifacts bucket (the stack output {c.OUTPUT_ARTIFACTS_BUCKET}): every object and "
                     "version, since CloudFormation deletes only empty buckets")


def cmd_destroy(args: argparse.Namespace) -> int:
    commands = cdk_commands(args.target, "destroy")
    prepared = _prepare(args, commands, steps=(EMPTY_BUCKET_STEP,))
    if prepared is None:
        return 0
    env, where = prepared
    try:
        target = _open_deployed(args.target)
    except DeploymentError as exc:
        if "is not deployed" in str(exc):
            print(f"fanflow: {exc.args[0].split(':')[0]}; nothing to destroy", file=sys.stderr)
            return 0
        raise
    bucket = target.outputs.get(c.OUTPUT_ARTIFACTS_BUCKET)
    if bucket:
        removed = empty_bucket(target.client("s3"), bucket)
        print(f"emptied {bucket} ({removed} objects)", file=sys.stderr)
    print(f"destroying {c.STACK_NAME} on {where}", file=sys.stderr)
    run_commands(commands, env)
    return 0


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and version) in `bucket`: CloudFormation deletes only empty buckets."""
    from botocore.exceptions import ClientError

    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
            removed += len(page.get("Versions", []))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
    return removed


def _print_plan(target: str, commands: list[list[str]], env: dict[str, str], steps: tuple[str, ...] = ()) -> None:
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    for name, value in sorted(changed.items()):
        print(f"export {name}={shlex.quote(value)}")
    for step in steps:
        print(f"# fanflow: {step}")
    for command in commands:
        print(f"(cd infra && {shlex.join(command)})")


# -- up / down ---------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from local.server import EndpointError, endpoint_file, running_endpoint, serve

    if args.detach:
        return _up_detached(args)

    stop = "fanflow down" if args.detached else "Ctrl-C or fanflow down"
    faults = fault_plan(args)
    options.check_time_scale(args.aws_limits, args.time_scale)

    def ready(state: Any) -> None:
        print(f"fanflow endpoint serving at {state.url} (pid {state.pid}, region {state.region}, "
              f"stack {c.STACK_NAME} deployed; state in {endpoint_file()})", file=sys.stderr)
        print(f"use it: fanflow run --target embedded ...  |  aws --endpoint-url {state.url} ...  |  "
              f"stop: {stop}", file=sys.stderr, flush=True)
        if args.aws_limits:
            scale = f", {args.time_scale:g} times slower than AWS" if args.time_scale else ", in real time"
            print(f"fanflow: under {args.aws_limits}'s published AWS limits{scale}", file=sys.stderr, flush=True)
        if faults.active:
            print(f"fanflow: {describe_faults(faults)}", file=sys.stderr, flush=True)

    existing = running_endpoint()
    if existing is not None:
        raise DeploymentError(f"an endpoint is already running at {existing.url} (pid {existing.pid}): "
                          "stop it with `fanflow down`")
    announce_synth()
    settings: dict[str, Any] = {} if args.kept_histories is None else {"kept_histories": args.kept_histories}
    try:
        serve(port=args.port, compute_seconds=args.compute_seconds, lambda_concurrency=args.lambda_concurrency,
              on_ready=ready, fan_in_batching=options.fan_in_batching(args.fan_in_batch_size, args.fan_in_window),
              faults=faults, aws_limits=args.aws_limits, time_scale=args.time_scale, **settings)
    except EndpointError as exc:
        raise DeploymentError(str(exc)) from None
    print("fanflow endpoint stopped", file=sys.stderr)
    return 0


def _up_detached(args: argparse.Namespace) -> int:
    from local.assembly import cache_root
    from local.log_files import rotate
    from local.server import endpoint_file, read_state, running_endpoint

    existing = running_endpoint()
    if existing is not None:
        raise DeploymentError(f"an endpoint is already running at {existing.url} (pid {existing.pid}): "
                          "stop it with `fanflow down`")
    log = cache_root() / "logs" / "endpoint.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rotate(log)
    command = [sys.executable, "-m", "fanflow.cli", "up", "--detached", "--port", str(args.port),
               "--compute-seconds", str(args.compute_seconds), "--lambda-concurrency", str(args.lambda_concurrency)]
    if args.kept_histories is not None:
        command += ["--kept-histories", str(args.kept_histories)]
    options.check_time_scale(args.aws_limits, args.time_scale)
    if args.aws_limits is not None:
        command += ["--aws-limits", args.aws_limits]
    if args.time_scale is not None:
        command += ["--time-scale", str(args.time_scale)]
    options.fan_in_batching(args.fan_in_batch_size, args.fan_in_window)  # refused now, before the process starts
    for option, value in (("--fan-in-batch-size", args.fan_in_batch_size), ("--fan-in-window", args.fan_in_window)):
        if value is not None:
            command += [option, str(value)]
    command += fault_arguments(args)
    fault_note = describe_faults(fault_plan(args))
    announce_synth()
    with log.open("a") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state.pid == process.pid:
            print(f"fanflow endpoint serving at {state.url} (pid {state.pid}); log: {log}; stop: fanflow down")
            if fault_note:
                print(f"fanflow: {fault_note}", file=sys.stderr)
            return 0
        if process.poll() is not None:
            raise DeploymentError(f"the endpoint exited with status {process.returncode} before serving: "
                              f"{_tail(log)}")
        time.sleep(0.2)
    process.terminate()
    raise DeploymentError(f"the endpoint did not serve within {args.start_timeout:.0f} s (see {log}); "
                      f"state file: {endpoint_file()}")


def announce_synth() -> None:
    """Say so before a start that synthesizes the CDK app: ten silent seconds otherwise."""
    from local.assembly import assembly_is_current

    if not assembly_is_current():
        print("fanflow: synthesizing the CDK app (the first run, or its sources changed): about 10 s",
              file=sys.stderr, flush=True)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmd_down(args: argparse.Namespace) -> int:
    from local.server import EndpointError, stop_endpoint

    try:
        state = stop_endpoint(timeout=args.timeout)
    except EndpointError as exc:
        raise DeploymentError(str(exc)) from None
    if state is None:
        print("fanflow: no endpoint is running", file=sys.stderr)
    else:
        print(f"stopped the endpoint at {state.url} (pid {state.pid})", file=sys.stderr)
    return 0
