"""Suite-wide isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_developer_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`fanflow run --target embedded` uses a running `fanflow up` endpoint when its state
    file exists. A developer's endpoint must not serve the tests' runs: every test sees a
    state file of its own (absent unless a test starts an endpoint)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FANFLOW_ENDPOINT_FILE", str(tmp_path_factory.mktemp("endpoint") / "endpoint.json"))
    yield
    patch.undo()
