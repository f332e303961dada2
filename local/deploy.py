"""Deploys a synthesized assembly the way `cdk deploy` does, against any boto3 endpoint
the caller's clients point at: publish the file assets to the bucket the assembly names,
then create the stack through CloudFormation and wait for it."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

from lambda_fns import constants as c

from .assembly import template_path


class DeployError(RuntimeError):
    pass


def zip_directory(directory: Path) -> bytes:
    """A deterministic zip of a directory (sorted entries, fixed timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _placeholders(value: str, account: str, region: str) -> str:
    return (value.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
            .replace("${AWS::Partition}", "aws"))


def publish_assets(assembly: Path, s3: Any, *, account: str, region: str, stack_name: str = c.STACK_NAME) -> int:
    manifest = json.loads((assembly / f"{stack_name}.assets.json").read_text())
    published = 0
    for asset in manifest.get("files", {}).values():
        source = assembly / asset["source"]["path"]
        body = zip_directory(source) if asset["source"].get("packaging") == "zip" else source.read_bytes()
        for destination in asset["destinations"].values():
            bucket = _placeholders(destination["bucketName"], account, region)
            try:
                if region == "us-east-1":
                    s3.create_bucket(Bucket=bucket)
                else:
                    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            s3.put_object(Bucket=bucket, Key=_placeholders(destination["objectKey"], account, region), Body=body)
            published += 1
    return published


def stack_outputs(cloudformation: Any, stack_name: str = c.STACK_NAME) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def create_stack(assembly: Path, cloudformation: Any, *, timeout: float = 120.0,
                 stack_name: str = c.STACK_NAME) -> dict[str, str]:
    """Create the stack and wait for CREATE_COMPLETE; returns the stack outputs."""
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=template_path(assembly, stack_name).read_text(),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack_outputs(cloudformation, stack_name)
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
            failures = [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
                        for e in events if e["ResourceStatus"].endswith("FAILED")]
            raise DeployError(f"stack {stack_name} ended {status}: " + "; ".join(failures[:5]))
        time.sleep(0.2)


def _resolve(value: Any, physical: dict[str, dict[str, str]], account: str, region: str) -> Any:
    """Resolve the Ref / GetAtt Arn forms CDK renders for functions and event buses."""
    if isinstance(value, dict) and "Ref" in value:
        return physical[value["Ref"]]["PhysicalResourceId"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        resource = physical[logical_id]
        if attribute == "Arn" and resource["ResourceType"] == "AWS::Events::EventBus":
            return f"arn:aws:events:{region}:{account}:event-bus/{resource['PhysicalResourceId']}"
        if attribute == "Arn" and resource["ResourceType"] == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{region}:{account}:function:{resource['PhysicalResourceId']}"
        raise DeployError(f"cannot resolve {attribute} of {resource['ResourceType']} {logical_id}")
    return value


def apply_event_invoke_configs(assembly: Path, cloudformation: Any, lambda_client: Any, *,
                               account: str, region: str) -> int:
    """moto's CloudFormation has no model for AWS::Lambda::EventInvokeConfig (the retry
    count and on-failure destination of asynchronous invocations): apply each one from the
    template through the Lambda API, as CloudFormation would."""
    template = json.loads(template_path(assembly).read_text())
    configs = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    if not configs:
        return 0
    physical = {r["LogicalResourceId"]: r for r in
                cloudformation.describe_stack_resources(StackName=c.STACK_NAME)["StackResources"]
                if "LogicalResourceId" in r}
    for props in configs:
        resolved = _resolve_tree(props, physical, account, region)
        lambda_client.put_function_event_invoke_config(
            FunctionName=resolved["FunctionName"],
            **{k: resolved[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
               if k in resolved},
        )
    return len(configs)


def _resolve_tree(value: Any, physical: dict[str, dict[str, str]], account: str, region: str) -> Any:
    resolved = _resolve(value, physical, account, region)
    if resolved is not value:
        return resolved
    if isinstance(value, dict):
        return {k: _resolve_tree(v, physical, account, region) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_tree(v, physical, account, region) for v in value]
    return value
