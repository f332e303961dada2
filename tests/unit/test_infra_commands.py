"""What `fanflow deploy` / `destroy` run and with which environment, the pinned CDK CLI,
and the LocalStack compose file. No Docker, no AWS: the CDK CLI itself only synthesizes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fanflow.cli import build_parser
from fanflow.commands import infra as infra_commands
from fanflow.commands.infra import (
    cdk_commands,
    cdk_environment,
    check_cdk_tools,
    context_arguments,
)
from fanflow.deployments import LOCALSTACK_DEFAULT_ENDPOINT, LOCALSTACK_IMAGE, LOCALSTACK_SERVICES
from fanflow.errors import DeploymentError
from lambda_fns import constants as c
from local.assembly import ensure_assembly, template_path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# CloudFormation namespace -> the LocalStack service that provides it.
SERVICE_OF_NAMESPACE = {
    "CloudFormation": "cloudformation", "CloudWatch": "cloudwatch", "DynamoDB": "dynamodb", "Events": "events",
    "IAM": "iam", "KMS": "kms", "Lambda": "lambda", "Logs": "logs", "S3": "s3", "Scheduler": "scheduler",
    "SNS": "sns", "SQS": "sqs", "SSM": "ssm", "StepFunctions": "stepfunctions",
}
# Namespaces LocalStack's community image does not emulate (X-Ray is in its pro image only):
# its CloudFormation skips such resources while CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES allows
# it (a default LocalStack has announced it will change). The sampling rule matters on AWS only.
NOT_EMULATED_NAMESPACES = {"XRay"}
# What `cdk bootstrap` needs besides: the CDKToolkit stack (S3, IAM, ECR repository, SSM
# version parameter) and STS for the caller's identity.
BOOTSTRAP_SERVICES = {"cloudformation", "s3", "iam", "ecr", "ssm", "sts"}


def compose_service() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]["localstack"]


def services_of(environment: dict) -> set[str]:
    return set(str(environment["SERVICES"]).split(","))


# -- docker-compose.yml ----------------------------------------------------------------------
def test_compose_runs_the_pinned_tokenless_image_unless_told_otherwise() -> None:
    service = compose_service()
    assert service["image"] == f"${{LOCALSTACK_IMAGE:-{LOCALSTACK_IMAGE}}}"
    assert LOCALSTACK_IMAGE == "localstack/localstack:4.14.0"  # the last image that starts without a token
    assert service["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"


def test_compose_publishes_the_gateway_and_mounts_the_docker_socket() -> None:
    service = compose_service()
    assert service["ports"] == ["127.0.0.1:${LOCALSTACK_PORT:-4566}:4566"]
    assert LOCALSTACK_DEFAULT_ENDPOINT == "http://localhost:4566"
    assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]  # Lambda in sibling containers
    assert "/_localstack/health" in " ".join(service["healthcheck"]["test"])
    assert "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT" in service["environment"]


def test_compose_services_are_the_targets_and_cover_the_stack_and_bootstrap() -> None:
    # GIVEN the synthesized stack's resource types
    resources = json.loads(template_path(ensure_assembly()).read_text())["Resources"].values()
    namespaces = {r["Type"].split("::")[1] for r in resources
                  if not r["Type"].startswith("AWS::CDK::")} - NOT_EMULATED_NAMESPACES
    unknown = namespaces - SERVICE_OF_NAMESPACE.keys()
    assert not unknown, f"map {unknown} to LocalStack services here, and enable them in docker-compose.yml"
    # THEN LocalStack runs every service they and `cdk bootstrap` need, as the tests' container does
    services = services_of(compose_service()["environment"])
    assert services == set(LOCALSTACK_SERVICES)
    needed = {SERVICE_OF_NAMESPACE[n] for n in namespaces} | BOOTSTRAP_SERVICES
    assert needed <= services, f"missing from SERVICES: {sorted(needed - services)}"


def docker_compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_accepts_the_file() -> None:
    command = docker_compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCALSTACK_IMAGE", "LOCALSTACK_AUTH_TOKEN")}
    result = subprocess.run([*command, "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            env=env, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert LOCALSTACK_IMAGE in result.stdout
    # a token holder's image and token come through
    result = subprocess.run([*command, "-f", str(COMPOSE), "config"], capture_output=True, text=True, check=False,
                            env=dict(env, LOCALSTACK_IMAGE="localstack/localstack-pro:4.14.0",
                                     LOCALSTACK_AUTH_TOKEN="ls-token"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "localstack/localstack-pro:4.14.0" in result.stdout and "ls-token" in result.stdout


# -- package.json: the pinned CDK CLI --------------------------------------------------------
def test_package_json_pins_the_cdk_clis_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    pins = package["devDependencies"]
    assert set(pins) == {"aws-cdk", "aws-cdk-local"}
    for name, version in pins.items():
        assert version[0].isdigit(), f"{name} must be pinned exactly, not {version!r}"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for name, version in pins.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_the_pinned_cdk_cli_synthesizes_this_app(tmp_path: Path) -> None:
    """The CDK CLI refuses a cloud assembly newer than it knows: the pinned CLI must read
    what the pinned aws-cdk-lib writes."""
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        pytest.skip(f"node_modules/.bin/cdk is missing: run `npm install` in {ROOT}")
    version = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    out = subprocess.run([str(cdk), "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.startswith(version)
    result = subprocess.run(
        [str(cdk), "synth", c.STACK_NAME, "--app", infra_commands.app_command(), "--no-notices", "-q",
         "-o", str(tmp_path)],
        cwd=ROOT / "infra", capture_output=True, text=True, check=False, timeout=240,
        env=cdk_environment("aws", base=dict(os.environ)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert f"{c.STACK_NAME}" in manifest["artifacts"]


# -- the commands deploy and destroy run ------------------------------------------------------
def test_deploy_bootstraps_then_deploys_the_stack_without_prompting() -> None:
    context = context_arguments(0.5, 3, ["seedVariant=false"])
    assert context == ["-c", "computeSeconds=0.5", "-c", "retentionDays=3", "-c", "seedVariant=false"]
    bootstrap, deploy = cdk_commands("localstack", "deploy", context=context)
    assert bootstrap[:4] == ["npx", "--no-install", "cdklocal", "bootstrap"]
    assert deploy[:5] == ["npx", "--no-install", "cdklocal", "deploy", c.STACK_NAME]
    assert deploy[deploy.index("--require-approval") + 1] == "never"
    assert deploy[deploy.index("--app") + 1] == f"{sys.executable} app.py"  # this interpreter, not PATH's
    assert deploy[-6:] == context
    (only,) = cdk_commands("aws", "deploy", bootstrap=False)
    assert only[:4] == ["npx", "--no-install", "cdk", "deploy"]
    (destroy,) = cdk_commands("aws", "destroy")
    assert destroy[:6] == ["npx", "--no-install", "cdk", "destroy", c.STACK_NAME, "--force"]


def test_context_needs_key_value() -> None:
    with pytest.raises(DeploymentError, match="KEY=VALUE"):
        context_arguments(extra=["computeSeconds"])


def test_cdklocal_gets_the_endpoint_for_s3_too_and_keeps_the_region() -> None:
    # GIVEN a LocalStack on a port of its own and a region the user chose
    base = {"PATH": "/usr/bin", "AWS_PROFILE": "prod", "AWS_ENVAR_ALLOWLIST": "AWS_MAX_ATTEMPTS"}
    env = cdk_environment("localstack", endpoint="http://127.0.0.1:4567", region="eu-west-1", base=base)
    # THEN cdklocal targets it for every service, S3 path-style (no DNS needed), in that region
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4567"
    assert env["AWS_S3_FORCE_PATH_STYLE"] == "1"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert set(env["AWS_ENVAR_ALLOWLIST"].split(",")) == {"AWS_MAX_ATTEMPTS", "AWS_REGION", "AWS_DEFAULT_REGION"}
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"
    # AND the AWS target's environment is the user's own (profile and all)
    aws = cdk_environment("aws", base=base)
    assert aws["AWS_PROFILE"] == "prod" and "AWS_ENDPOINT_URL" not in aws


def test_missing_node_modules_says_run_npm_install(tmp_path: Path) -> None:
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed here")
    with pytest.raises(DeploymentError, match=r"the pinned CDK CLI is not installed .*run `npm install` in"):
        check_cdk_tools("localstack", root=tmp_path)


def test_missing_npx_says_install_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeploymentError, match=r"npx was not found: install Node\.js"):
        check_cdk_tools("aws")


def test_deploy_targets_are_localstack_and_aws_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "--target", "embedded"])
    assert "invalid choice: 'embedded'" in capsys.readouterr().err


def test_dry_run_prints_the_commands_without_checking_the_target(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    monkeypatch.setenv("LOCALSTACK_ENDPOINT", "http://127.0.0.1:1")  # nothing there; not contacted
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    args = build_parser().parse_args(["deploy", "--target", "localstack", "--compute-seconds", "0", "--dry-run"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:1" in out
    assert "npx --no-install cdklocal bootstrap" in out and "-c computeSeconds=0" in out
