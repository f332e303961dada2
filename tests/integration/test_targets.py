"""One end-to-end suite for every target: the same 100-case request, the same assertions,
on the embedded emulator (always), on LocalStack (in a container, when a Docker engine is
reachable) and on AWS (only when FANFLOW_AWS_PROFILE names a profile to deploy with).
Then the embedded endpoint (`fanflow up` / `fanflow down`) and the targets' errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from fanflow.cli import main
from fanflow.commands import infra as infra_commands
from fanflow.deployments import LOCALSTACK_IMAGE, LOCALSTACK_SERVICES, docker_engine_error, open_deployment
from fanflow.errors import DeploymentError
from lambda_fns import constants as c
from local.deploy import stack_outputs
from local.server import read_state, stop_endpoint
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CASES = 100



def docker_unreachable(timeout: int = 3) -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    exc = docker_engine_error(timeout)
    return None if exc is None else f"{type(exc).__name__}: {exc}"


def cdk_tools_missing(target: str) -> str | None:
    try:
        infra_commands.check_cdk_tools(target)
    except DeploymentError as exc:
        return str(exc)
    return None


# -- targets, each deployed for the test that uses it ----------------------------------------
def localstack_deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    reason = docker_unreachable()
    if reason is not None:
        pytest.skip(f"no Docker engine reachable: {reason}")
    missing = cdk_tools_missing("localstack")
    if missing is not None:
        pytest.skip(missing)
    from testcontainers.community.localstack import LocalStackContainer

    container = (
        LocalStackContainer(image=os.environ.get("LOCALSTACK_IMAGE", LOCALSTACK_IMAGE), region_name="us-east-1")
        .with_services(*LOCALSTACK_SERVICES)
        .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
        .with_env("LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT", "120")
    )
    if os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        container = container.with_env("LOCALSTACK_AUTH_TOKEN", os.environ["LOCALSTACK_AUTH_TOKEN"])
    container.start(timeout=300)
    try:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("LOCALSTACK_ENDPOINT", container.get_url())
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        assert main(["deploy", "--target", "localstack", "--compute-seconds", "0"]) == 0
        yield "localstack"
    finally:
        container.stop()


def aws_deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    profile = os.environ.get("FANFLOW_AWS_PROFILE")
    if not profile:
        pytest.skip("FANFLOW_AWS_PROFILE is not set: the aws target deploys to a real account only when it names "
                    "a profile to use")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", profile)
    assert main(["deploy", "--target", "aws", "--compute-seconds", "0"]) == 0
    try:
        yield "aws"
    finally:
        if os.environ.get("FANFLOW_AWS_KEEP") != "1":
            assert main(["destroy", "--target", "aws"]) == 0


@pytest.fixture
def deployed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "embedded":
        yield "embedded"  # deployed in-process by the run itself
    elif request.param == "localstack":
        yield from localstack_deployed(monkeypatch)
    else:
        yield from aws_deployed(monkeypatch)


@pytest.mark.parametrize("deployed", [
    pytest.param("embedded"),
    pytest.param("localstack", marks=pytest.mark.timeout(1800)),
    pytest.param("aws", marks=pytest.mark.timeout(3600)),
], indirect=True)
def test_hundred_cases_complete_exactly_once(deployed: str, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the stack deployed on the target
    capsys.readouterr()  # the deployment's own output
    request_id = f"targets-{deployed}-{uuid.uuid4().hex[:8]}"
    # WHEN a 100-case request runs through the CLI, as a user would run it
    code = main(["run", "--cases", str(CASES), "--request-id", request_id, "--target", deployed,
                 "--compute-seconds", "0", "--timeout", "900", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    result = json.loads(captured.out)
    # THEN every case is counted once, the request succeeded, and Summary ran once
    assert result["deployTarget"] == deployed
    assert result["requestId"] == request_id
    assert result["status"] == c.STATUS_SUCCEEDED
    assert result["counterRow"][c.ATTR_COUNTER] == result["counterRow"][c.ATTR_EXPECTED] == CASES
    assert result["counterRow"][c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert result["succeeded"] == CASES and result["failed"] == 0 and result["timedOut"] == []
    assert len({case["caseId"] for case in result["cases"]}) == CASES
    if deployed == "embedded":
        assert result["summaryInvocations"] == 1  # counted only where the handlers run in-process
    if "summaryInvocations" in result:
        assert result["summaryInvocations"] == 1


# -- the embedded endpoint -------------------------------------------------------------------
def test_up_serves_embedded_runs_from_other_processes_until_down(tmp_path: Path) -> None:
    # GIVEN `fanflow up` on a free port, with a state file of its own
    port = free_port()
    state_file = tmp_path / "endpoint.json"
    env = dict(os.environ, FANFLOW_ENDPOINT_FILE=str(state_file))
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen([sys.executable, "-m", "fanflow.cli", "up", "--port", str(port)], env=env,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 240
        while (state := read_state(state_file)) is None or state.pid != up.pid:
            assert up.poll() is None, f"fanflow up exited {up.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"fanflow up did not serve in time: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        assert state.url == f"http://127.0.0.1:{port}"
        # WHEN another process runs a 20-case request on the embedded target
        run = subprocess.run([sys.executable, "-m", "fanflow.cli", "run", "--target", "embedded", "--cases", "20",
                              "--request-id", "via-endpoint", "--json"],
                             env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
        # THEN it succeeds, on the endpoint: the endpoint holds its counter row
        assert run.returncode == 0, run.stderr[-2000:]
        result = json.loads(run.stdout)
        assert result["status"] == c.STATUS_SUCCEEDED
        assert result["counterRow"][c.ATTR_COUNTER] == result["counterRow"][c.ATTR_EXPECTED] == 20
        assert result["summaryInvocations"] == 1
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name="us-east-1")
        outputs = stack_outputs(session.client("cloudformation", endpoint_url=state.url))
        item = session.client("dynamodb", endpoint_url=state.url).get_item(
            TableName=outputs[c.OUTPUT_COUNTER_TABLE], Key={c.ATTR_REQUEST_ID: {"S": "via-endpoint"}})["Item"]
        assert item[c.ATTR_STATUS]["S"] == c.STATUS_SUCCEEDED
        # WHEN `fanflow down` runs  THEN the endpoint exits cleanly and its state file is gone
        down = subprocess.run([sys.executable, "-m", "fanflow.cli", "down"], env=env, capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
        assert down.returncode == 0, down.stderr
        assert f"stopped the endpoint at {state.url}" in down.stderr
        assert up.wait(timeout=30) == 0
        assert not state_file.exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=30)


def test_a_stale_state_file_is_removed_without_signalling_its_pid(tmp_path: Path) -> None:
    # GIVEN a state file naming a live process that is not an endpoint, at a closed port
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state_file = tmp_path / "endpoint.json"
        port = free_port()
        state_file.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": bystander.pid, "port": port}))
        # WHEN the endpoint is stopped  THEN nothing was running, the file is gone, the process lives
        assert stop_endpoint(state_file=state_file) is None
        assert not state_file.exists()
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait(timeout=10)


# -- errors ------------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main(list(args))
    return code, capsys.readouterr().err, time.monotonic() - started


def test_unreachable_localstack_fails_fast_with_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN nothing listening where LocalStack is expected
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("LOCALSTACK_ENDPOINT", endpoint)
    # WHEN a request is run there  THEN the CLI says so, within seconds, and exits 1
    code, err, elapsed = run_cli(capsys, "run", "--cases", "1", "--target", "localstack")
    assert code == 1
    assert f"LocalStack is not reachable at {endpoint}" in err
    assert "docker compose up -d" in err
    assert elapsed < 15
    # AND deploying there stops at the same check, before the CDK CLI runs
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    monkeypatch.setattr(infra_commands, "run_commands", _must_not_run)
    code, err, elapsed = run_cli(capsys, "deploy", "--target", "localstack")
    assert code == 1 and f"LocalStack is not reachable at {endpoint}" in err and elapsed < 15


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the CDK CLI must not run when the target is unusable")


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.mark.usefixtures("no_aws_credentials")
def test_aws_without_credentials_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a request is run on AWS with no credentials anywhere
    code, err, _ = run_cli(capsys, "run", "--cases", "1", "--target", "aws")
    # THEN the CLI says what is missing, checked with STS, and exits 1
    assert code == 1
    assert "no AWS credentials found (checked with sts get-caller-identity)" in err
    # AND deploy stops there too, before the CDK CLI runs
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    monkeypatch.setattr(infra_commands, "run_commands", _must_not_run)
    code, err, _ = run_cli(capsys, "deploy", "--target", "aws")
    assert code == 1 and "no AWS credentials found" in err


@pytest.mark.usefixtures("no_aws_credentials")
def test_aws_with_a_missing_profile_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "fanflow-no-such-profile")
    with pytest.raises(DeploymentError, match=r"no usable AWS credentials: .*fanflow-no-such-profile"), \
            open_deployment("aws"):
        pass


@pytest.fixture(scope="module")
def bare_moto() -> Iterator[str]:
    """A moto server with nothing deployed, in a process of its own."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_localstack_without_the_stack_says_to_deploy(bare_moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an endpoint that answers but has no Fanflow stack
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("LOCALSTACK_ENDPOINT", bare_moto)
    # WHEN the localstack target is opened  THEN the error names the stack, the target and the fix
    with pytest.raises(DeploymentError) as raised, open_deployment("localstack"):
        pass
    assert str(raised.value) == (f"stack {c.STACK_NAME} is not deployed on localstack ({bare_moto}): "
                                 "run fanflow deploy --target localstack")


@pytest.mark.usefixtures("no_aws_credentials")
def test_aws_without_the_stack_says_to_deploy(bare_moto: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN credentials that work (moto's STS) and no Fanflow stack in the account
    monkeypatch.setenv("AWS_ENDPOINT_URL", bare_moto)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # WHEN a request is run on AWS  THEN the CLI names the account and region and says to deploy
    code, err, _ = run_cli(capsys, "run", "--cases", "1", "--target", "aws")
    assert code == 1
    assert (f"stack {c.STACK_NAME} is not deployed on aws (account 123456789012, region us-east-1): "
            "run fanflow deploy --target aws") in err
    # AND destroying what is not there is not an error, and runs no CDK command
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    monkeypatch.setattr(infra_commands, "run_commands", _must_not_run)
    code, err, _ = run_cli(capsys, "destroy", "--target", "aws")
    assert code == 0 and "nothing to destroy" in err


@pytest.mark.usefixtures("no_aws_credentials")
@pytest.mark.parametrize("with_bucket", [True, False])
def test_destroy_empties_the_artifacts_bucket_then_runs_cdk_destroy(
        bare_moto: str, with_bucket: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a Fanflow stack whose artifacts bucket holds summaries (or a stack with no outputs)
    region = "eu-west-1" if with_bucket else "eu-west-2"  # a moto backend of its own
    for name, value in {"AWS_ENDPOINT_URL": bare_moto, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": region}.items():
        monkeypatch.setenv(name, value)
    template: dict = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}
    if with_bucket:
        template["Outputs"] = {c.OUTPUT_ARTIFACTS_BUCKET: {"Value": {"Ref": "Bucket"}}}
    session = boto3.session.Session(region_name=region)
    session.client("cloudformation").create_stack(StackName=c.STACK_NAME, TemplateBody=json.dumps(template))
    s3 = session.client("s3")
    bucket = session.client("cloudformation").describe_stack_resource(
        StackName=c.STACK_NAME, LogicalResourceId="Bucket")["StackResourceDetail"]["PhysicalResourceId"]
    for key in ("summaries/a.json", "manifests/a/m.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    ran: list[list[str]] = []
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    monkeypatch.setattr(infra_commands, "run_commands", lambda commands, env: ran.extend(commands))
    # WHEN it is destroyed
    assert main(["destroy", "--target", "aws"]) == 0
    # THEN the bucket was emptied first (when the stack names it), and cdk destroy ran
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == (0 if with_bucket else 2)
    assert [command[2:6] for command in ran] == [["cdk", "destroy", c.STACK_NAME, "--force"]]
