"""What the tests that drive `fanflow` in other processes share: a free port for an endpoint,
and the command line itself, run from the repository's root."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_fanflow(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m fanflow.cli ARGS` with `env`, its output captured as text; never raises for its exit status."""
    return subprocess.run([sys.executable, "-m", "fanflow.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)
