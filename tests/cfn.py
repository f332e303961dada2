"""Reading a synthesized template in infra tests: find a resource, follow references, and
render a `Fn::Join` of JSON (a state machine definition, a dashboard body) with each token
written as `${Ref:id}` or `${GetAtt:id.attr}`."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template


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
