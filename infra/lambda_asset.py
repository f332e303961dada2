"""The one Lambda asset every function shares: the `lambda_fns` package, staged alone
(Python sources only) so that the asset hash changes only when handler code does."""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

import lambda_fns

PACKAGE_DIR = Path(lambda_fns.__file__).resolve().parent


@lru_cache(maxsize=1)
def staged_source() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fanflow-lambda-"))
    target = root / PACKAGE_DIR.name
    target.mkdir()
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        shutil.copyfile(source, target / source.name)
    return root


def code() -> lambda_.Code:
    return lambda_.Code.from_asset(str(staged_source()))


def handler(module: str) -> str:
    return f"{PACKAGE_DIR.name}.{module}.handler"
