"""Sample requests in the seed's format: {"requestId", "requests": [{"caseId"}...], "length"}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED_SIZES = (1, 5, 10, 20, 40, 100, 200, 500, 700, 1000)
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data_sets"


def sample_request(cases: int, request_id: str = "123456") -> dict[str, Any]:
    if cases < 1:
        raise ValueError("a request needs at least one case")
    return {"requestId": request_id, "requests": [{"caseId": str(i)} for i in range(cases)], "length": str(cases)}


def dumps(request: dict[str, Any]) -> str:
    """Compact, as the seed's files are."""
    return json.dumps(request, separators=(",", ":"))


def write_seed_sizes(directory: Path = SAMPLE_DIR) -> list[Path]:
    paths = []
    for size in SEED_SIZES:
        path = directory / f"dataset_{size}.json"
        path.write_text(dumps(sample_request(size)) + "\n")
        paths.append(path)
    return paths
