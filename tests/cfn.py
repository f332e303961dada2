"""Reading a synthesized template in infra tests: find a resource, follow references, and
render a `Fn::Join` of JSON (a state machine definition, a dashboard body) with each token
written as `${Ref:id}` or `${GetAtt:id.attr}`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk.assertions import Annotations, Template

STATE_MACHINE = "AWS::StepFunctions::StateMachine"


@dataclass(frozen=True)
class Synthesized:
    stack: Stack
    template: Template
    annotations: Annotations
    template_file: Path


def logical_id(template: Template, resource_type: str, fragment: str) -> str:
    """The one resource of this type whose logical id contains `fragment`."""
    found = [lid for lid in template.find_resources(resource_type) if fragment in lid]
    assert len(found) == 1, f"expected one {resource_type} matching {fragment!r}, found {found}"
    return found[0]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any, lid: str) -> bool:
    """Whether a CloudFormation value (Ref, GetAtt, or a Join of them) points at `lid`."""
    if isinstance(value, dict):
        if value.get("Ref") == lid or value.get("Fn::GetAtt", [None])[0] == lid:
            return True
        return any(references(v, lid) for v in value.values())
    if isinstance(value, list):
        return any(references(v, lid) for v in value)
    return False


def placeholder(token: dict[str, Any]) -> str:
    if "Ref" in token:
        return "${Ref:" + token["Ref"] + "}"
    if "Fn::GetAtt" in token:
        return "${GetAtt:" + ".".join(token["Fn::GetAtt"]) + "}"
    raise AssertionError(f"unexpected token in rendered JSON: {token}")


def rendered_json(value: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON document CloudFormation assembles with `Fn::Join`, tokens as placeholders."""
    if isinstance(value, str):
        return dict(json.loads(value))
    separator, parts = value["Fn::Join"]
    return dict(json.loads(separator.join(p if isinstance(p, str) else placeholder(p) for p in parts)))


def definition(template: Template, fragment: str) -> dict[str, Any]:
    """The ASL of the state machine whose logical id contains `fragment`, tokens as placeholders."""
    sm_id = logical_id(template, STATE_MACHINE, fragment)
    return rendered_json(template.to_json()["Resources"][sm_id]["Properties"]["DefinitionString"])


def ref(lid: str) -> str:
    return "${Ref:" + lid + "}"


def arn(lid: str) -> str:
    return "${GetAtt:" + lid + ".Arn}"


def caught_by(task: dict[str, Any], error: str) -> str:
    """The state a task's Catch sends `error` to."""
    targets = [catch["Next"] for catch in task.get("Catch", []) if error in catch["ErrorEquals"]]
    assert len(targets) == 1, f"expected one Catch for {error!r}, found {task.get('Catch')}"
    return str(targets[0])


def role_of(template: Template, resource_id: str) -> str:
    """The logical id of the IAM role a function (Role) or state machine (RoleArn) runs as."""
    props = template.to_json()["Resources"][resource_id]["Properties"]
    return str((props.get("Role") or props["RoleArn"])["Fn::GetAtt"][0])


def role_statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    """The Allow statements of every AWS::IAM::Policy attached to the role."""
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert statements, f"no inline policy is attached to {role_id}"
    return statements


def role_actions(template: Template, role_id: str) -> set[str]:
    return {action for s in role_statements(template, role_id) for action in as_list(s["Action"])}


def allows(template: Template, role_id: str, action: str, resource_id: str) -> bool:
    """Whether the role may perform `action` (exactly or by wildcard) on a resource built from `resource_id`."""
    return any(
        any(fnmatchcase(action, granted) for granted in as_list(s["Action"]))
        and any(references(r, resource_id) for r in as_list(s["Resource"]))
        for s in role_statements(template, role_id)
    )
