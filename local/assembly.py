"""The synthesized cloud assembly the embedded target deploys: `cdk synth` output,
rebuilt only when the infrastructure or handler sources (or the CDK libraries) change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import infra
import lambda_fns
from lambda_fns import constants as c

SOURCE_DIRS = (Path(infra.__file__).resolve().parent, Path(lambda_fns.__file__).resolve().parent)
FINGERPRINT_FILE = ".fanflow-fingerprint"


class SynthError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("FANFLOW_CACHE_DIR", Path.home() / ".cache" / "fanflow"))


def fingerprint(context: dict[str, str] | None = None) -> str:
    digest = hashlib.sha256(json.dumps(context or {}, sort_keys=True).encode())
    for package in ("aws-cdk-lib", "cdk-nag", "constructs"):
        digest.update(f"{package}={metadata.version(package)}".encode())
    for root in SOURCE_DIRS:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root.parent)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def template_path(assembly: Path, stack_name: str = c.STACK_NAME) -> Path:
    return assembly / f"{stack_name}.template.json"


def _outdir(context: dict[str, str] | None) -> Path:
    return cache_root() / ("cdk.out" + "".join(f"-{name}" for name in sorted(context or {})))


def _is_current(outdir: Path, key: str) -> bool:
    marker = outdir / FINGERPRINT_FILE
    return marker.is_file() and marker.read_text() == key and template_path(outdir).is_file()


def assembly_is_current(context: dict[str, str] | None = None) -> bool:
    """Whether the cached assembly matches the sources: if not, the next start synthesizes
    (about ten seconds), which a caller may want to announce."""
    return _is_current(_outdir(context), fingerprint(context))


def ensure_assembly(*, context: dict[str, str] | None = None, force: bool = False) -> Path:
    """A synthesized assembly matching the current sources (and CDK context values),
    synthesizing if needed."""
    key = fingerprint(context)
    outdir = _outdir(context)
    if not force and _is_current(outdir, key):
        return outdir
    staging = outdir.with_name(f"cdk.out.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    env = dict(os.environ, CDK_OUTDIR=str(staging), JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
               CDK_CONTEXT_JSON=json.dumps(context or {}))
    result = subprocess.run(
        [sys.executable, str(SOURCE_DIRS[0] / "app.py")],
        env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 or not template_path(staging).is_file():
        raise SynthError(f"cdk synth failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    (staging / FINGERPRINT_FILE).write_text(key)
    shutil.rmtree(outdir, ignore_errors=True)
    staging.rename(outdir)
    return outdir
