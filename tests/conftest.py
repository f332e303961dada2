"""Suite-wide isolation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from local.assembly import cache_root


@pytest.fixture(autouse=True, scope="session")
def _no_developer_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`fanflow run --target embedded` uses a running `fanflow up` endpoint when its state
    file exists. A developer's endpoint must not serve the tests' runs: every test sees a
    state file of its own (absent unless a test starts an endpoint)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FANFLOW_ENDPOINT_FILE", str(tmp_path_factory.mktemp("endpoint") / "endpoint.json"))
    yield
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's emulators write their logs (and any synthesis) into a cache of its own,
    never the developer's. The developer's synthesized assemblies are copied in (a few MB),
    so that the suite synthesizes only when the sources changed since they were made."""
    developer = cache_root()
    cache = tmp_path_factory.mktemp("cache")
    for assembly in developer.glob("cdk.out*"):
        if assembly.is_dir() and not assembly.name.startswith("cdk.out."):  # not another process's staging
            shutil.copytree(assembly, cache / assembly.name)
    patch = pytest.MonkeyPatch()
    patch.setenv("FANFLOW_CACHE_DIR", str(cache))
    yield
    patch.undo()
