"""The one Lambda asset every function shares: the `lambda_fns` package plus the parts of
Powertools for AWS Lambda (and their dependencies) that the Python runtime lacks, staged
alone (sources only, no caches) so that the asset hash changes only when handler code or
a vendored version does."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

import lambda_fns

PACKAGE_DIR = Path(lambda_fns.__file__).resolve().parent

# What the handlers import that the Lambda Python runtime does not provide (it has boto3,
# botocore, jmespath, s3transfer, urllib3, dateutil and six). Powertools is a layer on AWS,
# but LocalStack's community edition has no layers, so it travels in the asset, pruned to
# what Logger, Metrics and Tracer load: the full package is 7 MB, mostly utilities fanflow
# does not use. Tracer needs the X-Ray SDK (its botocore patch only) and wrapt, whose C
# extension is built for this machine, not for Lambda's arm64: wrapt's pure-Python wrappers
# take over. tests/unit/test_lambda_asset.py imports the handlers from the staged asset and
# fails if any of these modules would come from anywhere else.
VENDORED: dict[str, tuple[str, ...]] = {
    "aws_lambda_powertools": (
        "__init__.py", "package_logger.py", "py.typed", "exceptions", "warnings", "shared", "logging",
        "metrics", "tracing", "utilities/__init__.py", "utilities/jmespath_utils",
    ),
    "aws_xray_sdk": (
        "__init__.py", "sdk_config.py", "version.py", "core", "ext/__init__.py", "ext/util.py",
        "ext/boto_utils.py", "ext/botocore", "ext/resources",
    ),
    "wrapt": ("*.py",),
    "typing_extensions": (),  # a single module
}
SKIPPED = ("__pycache__", "*.pyc", "*.so", "*.c", "*.pyi")


class VendoringError(RuntimeError):
    """A package the asset must carry is not installed where synthesis runs."""


def _installed(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise VendoringError(f"{name} is not installed; the Lambda asset needs it (pip install -e .)")
    origin = Path(spec.origin)
    return origin.parent if spec.submodule_search_locations else origin


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIPPED), dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def vendor(root: Path) -> None:
    """Copy the vendored packages' selected parts into `root`."""
    for name, parts in VENDORED.items():
        installed = _installed(name)
        if installed.is_file():
            _copy(installed, root / installed.name)
            continue
        for part in parts:
            matches = sorted(installed.glob(part))
            if not matches:
                raise VendoringError(f"{name}/{part} is missing from {installed}: has the package changed?")
            for source in matches:
                _copy(source, root / name / source.relative_to(installed))


@lru_cache(maxsize=1)
def staged_source() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fanflow-lambda-"))
    target = root / PACKAGE_DIR.name
    target.mkdir()
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        shutil.copyfile(source, target / source.name)
    vendor(root)
    return root


def code() -> lambda_.Code:
    return lambda_.Code.from_asset(str(staged_source()))


def handler(module: str) -> str:
    return f"{PACKAGE_DIR.name}.{module}.handler"
