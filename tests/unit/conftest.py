"""The fanflow stack synthesized once for every infra test module that reads the default
template (no network, no credentials; an environment-agnostic stack whatever the shell exports),
and the fixtures of the tests that drive moto with fanflow's patches (tests/patch_helpers.py:
test_patches_*.py, test_event_sources.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Template

from infra.app import build_app
from infra.stack import FanflowStack
from lambda_fns import constants as c
from tests.cfn import Synthesized
from tests.patch_helpers import aws_env, hooked, recorder, session, unpatched  # noqa: F401 (pytest finds them by name)

ENV_WITHOUT_ACCOUNT = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_WITHOUT_ACCOUNT:
            mp.delenv(name, raising=False)
        mp.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        app = build_app(outdir=str(outdir))
        stack = app.node.find_child(c.STACK_NAME)
        assert isinstance(stack, FanflowStack)
        assembly = app.synth()
        template_file = Path(assembly.get_stack_by_name(c.STACK_NAME).template_full_path)
        yield Synthesized(stack=stack, template=Template.from_stack(stack),
                          annotations=Annotations.from_stack(stack), template_file=template_file)


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template
