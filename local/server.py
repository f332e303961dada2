"""The embedded emulator as a long-lived local endpoint (`fanflow up`): the stack is
deployed into an EmbeddedEmulator exactly as for an in-process run, and moto's HTTP server
is started in the same process, on the loopback interface, so that any AWS client (boto3,
the AWS CLI, `fanflow run --target embedded` in another process) reaches it by endpoint URL.

Inside the server process nothing changes: the ASL engine and the Lambda handlers keep
reaching the emulated services through moto's in-process interception (mock_aws stays
active), not over HTTP, so they see the same backends the HTTP server serves and no
MOTO_PORT or AWS_ENDPOINT_URL is needed for them. (moto's engine falls back to
http://localhost:$MOTO_PORT only when interception is off; MOTO_PORT is set anyway, for
anything that does.)

A state file (default ~/.cache/fanflow/endpoint.json, or $FANFLOW_ENDPOINT_FILE) records the
URL and the pid while the endpoint serves; `fanflow down` signals that pid. The server also
answers three routes of its own under /_fanflow/: `health` (pid, stack name and settings, its
fault injection among them, so that a stale state file is never taken for a live endpoint and a
client knows what it is served by), `summary-invocations/<requestId>` (how often Summary ran for
a request) and `injected-faults/<requestId>` (the faults injected into a request's cases), which
only the process running the handlers knows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lambda_fns import constants as c

from .assembly import cache_root
from .faults import FaultPlan

DEFAULT_PORT = 4599  # LocalStack's gateway is 4566
DEFAULT_HOST = "127.0.0.1"
HEALTH_PATH = "/_fanflow/health"
SUMMARY_PATH = "/_fanflow/summary-invocations/"
FAULTS_PATH = "/_fanflow/injected-faults/"
REGION = "us-east-1"
ACCESS_KEY = "testing"  # what the embedded emulator's own clients use
# kept_histories not given: the emulator's default (local.runtime, imported only to serve).
RUNTIME_DEFAULT: Any = object()


class EndpointError(RuntimeError):
    """The endpoint could not start, or stop; the message says why."""


@dataclass(frozen=True)
class EndpointState:
    url: str
    pid: int
    port: int
    region: str = REGION
    started_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def endpoint_file() -> Path:
    configured = os.environ.get("FANFLOW_ENDPOINT_FILE")
    return Path(configured) if configured else cache_root() / "endpoint.json"


def read_state(path: Path | None = None) -> EndpointState | None:
    """The state file's content, whether or not its endpoint is alive."""
    path = path or endpoint_file()
    try:
        data = json.loads(path.read_text())
        return EndpointState(url=str(data["url"]), pid=int(data["pid"]), port=int(data["port"]),
                             region=str(data.get("region", REGION)), started_at=float(data.get("started_at", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def health(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """What a fanflow endpoint at `url` says about itself; None when nothing (or something
    else) answers there."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + HEALTH_PATH, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("service") == "fanflow-embedded" else None


def describe_endpoint(state: EndpointState, *, patience: float = 10.0) -> tuple[dict[str, Any] | None, bool]:
    """(what the endpoint says about itself, or None when it does not answer; whether its
    process still runs). A live process is given `patience` seconds: a busy endpoint (a big
    request in flight) may answer slowly; one whose port takes no connections is not serving."""
    answer = health(state.url)
    if answer is not None and answer.get("pid") == state.pid:
        return answer, True
    if not _process_alive(state.pid) or not _listening(state.url):
        return None, False
    answer = health(state.url, timeout=patience)
    if answer is not None and answer.get("pid") == state.pid:
        return answer, True
    return None, True


def _listening(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or DEFAULT_HOST, parsed.port or 80), timeout=2.0):
            return True
    except OSError:
        return False


def forget_endpoint(state: EndpointState, path: Path | None = None) -> None:
    """Remove the state file of an endpoint that has stopped, if it still records that one."""
    path = path or endpoint_file()
    current = read_state(path)
    if current is not None and current.pid == state.pid:
        path.unlink(missing_ok=True)


def running_endpoint(path: Path | None = None) -> EndpointState | None:
    """The endpoint recorded in the state file, if it answers as the process recorded."""
    state = read_state(path)
    if state is None:
        return None
    answer = health(state.url)
    return state if answer is not None and answer.get("pid") == state.pid else None


def summary_invocations(url: str, request_id: str, timeout: float = 5.0) -> int | None:
    quoted = urllib.parse.quote(request_id, safe="")
    try:
        with urllib.request.urlopen(url.rstrip("/") + SUMMARY_PATH + quoted, timeout=timeout) as response:
            return int(json.loads(response.read())["summaryInvocations"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def injected_faults(url: str, request_id: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The faults the endpoint injected into a request's cases (FaultPlan.report); None when
    it does not say (it injects none, or is not a fanflow endpoint of this version)."""
    quoted = urllib.parse.quote(request_id, safe="")
    try:
        with urllib.request.urlopen(url.rstrip("/") + FAULTS_PATH + quoted, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return body.get("injectedFaults") if isinstance(body, dict) else None


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class EndpointServer:
    """An EmbeddedEmulator (stack deployed) plus moto's HTTP server over the same backends."""

    def __init__(self, *, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, lambda_concurrency: int = 1000,
                 compute_seconds: float | None = c.COMPUTE_SECONDS_EMBEDDED,
                 kept_histories: int | None = RUNTIME_DEFAULT,
                 fan_in_batching: dict[str, int] | None = None, faults: FaultPlan | None = None,
                 aws_limits: str | None = None, time_scale: float | None = None) -> None:
        self.host = host
        self.aws_limits = aws_limits  # the Region whose published limits the emulator runs under, or None
        self.time_scale = time_scale  # with aws_limits: that many times slower than AWS (None: 1)
        self.port = port
        self.lambda_concurrency = lambda_concurrency
        self.compute_seconds = compute_seconds
        self.kept_histories = kept_histories
        self.fan_in_batching = fan_in_batching  # batch_size and window_seconds, or None: the stack's own
        self.faults = faults or FaultPlan()  # injected into every request the endpoint runs
        self.emulator: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from werkzeug.serving import make_server

        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
        except ImportError as exc:  # moto[server] brings flask
            raise EndpointError(f"moto's server needs its extra: pip install 'moto[server]' ({exc})") from None
        from .runtime import DEFAULT_KEPT_HISTORIES, EmbeddedEmulator

        if self.kept_histories is RUNTIME_DEFAULT:
            self.kept_histories = DEFAULT_KEPT_HISTORIES
        if not port_is_free(self.port, self.host):
            raise EndpointError(f"port {self.port} on {self.host} is in use: choose another with --port")
        self.emulator = EmbeddedEmulator(lambda_concurrency=self.lambda_concurrency,
                                         compute_seconds=self.compute_seconds, kept_histories=self.kept_histories,
                                         faults=self.faults, aws_limits=self.aws_limits,
                                         time_scale=self.time_scale or 1.0)
        self.emulator.start()
        try:
            if self.fan_in_batching:
                self.emulator.set_fan_in_batching(**self.fan_in_batching)
            # werkzeug logs every request; the emulator's own log has what matters.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            app = self._with_fanflow_routes(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
            self.port = int(self._server.server_port)  # a requested port 0 becomes the one bound
            os.environ["MOTO_PORT"] = str(self.port)
            self._thread = threading.Thread(target=self._server.serve_forever, name="fanflow-endpoint", daemon=True)
            self._thread.start()
        except BaseException:
            self.emulator.stop()
            raise

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None

    def _with_fanflow_routes(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def routed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if path == HEALTH_PATH:
                # Its settings too: a run asking for others is refused rather than silently served.
                return _json_response(start_response, {"service": "fanflow-embedded", "pid": os.getpid(),
                                                       "stack": c.STACK_NAME, "region": REGION,
                                                       "lambdaConcurrency": self.lambda_concurrency,
                                                       "keptHistories": self.kept_histories,
                                                       "computeSeconds": self.compute_seconds,
                                                       "faults": self.faults.settings(),
                                                       "awsLimits": self.aws_limits,
                                                       "timeScale": self.time_scale,
                                                       **self._batching()})
            if path.startswith(SUMMARY_PATH):
                request_id = urllib.parse.unquote(path[len(SUMMARY_PATH):])
                runs = self.emulator.summary_invocations(request_id) if self.emulator else 0
                return _json_response(start_response, {"requestId": request_id, "summaryInvocations": runs})
            if path.startswith(FAULTS_PATH):
                request_id = urllib.parse.unquote(path[len(FAULTS_PATH):])
                injected = self.faults.report(request_id) if self.faults.active else None
                return _json_response(start_response, {"requestId": request_id, "injectedFaults": injected})
            return app(environ, start_response)

        return routed


    def _batching(self) -> dict[str, int]:
        """The fan-in batching the endpoint runs with, as its event source mapping has it."""
        if self.emulator is None:
            return {}
        batching = self.emulator.fan_in_batching()
        return {"fanInBatchSize": batching["batch_size"], "fanInWindow": batching["window_seconds"]}


def _json_response(start_response: Callable[..., Any], body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def serve(*, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, lambda_concurrency: int = 1000,
          compute_seconds: float | None = c.COMPUTE_SECONDS_EMBEDDED,
          kept_histories: int | None = RUNTIME_DEFAULT, state_file: Path | None = None,
          on_ready: Callable[[EndpointState], None] | None = None,
          fan_in_batching: dict[str, int] | None = None, faults: FaultPlan | None = None,
          aws_limits: str | None = None, time_scale: float | None = None) -> None:
    """Run the endpoint until SIGINT or SIGTERM; the state file exists while it serves."""
    state_file = state_file or endpoint_file()
    existing = running_endpoint(state_file)
    if existing is not None:
        raise EndpointError(f"an endpoint is already running at {existing.url} (pid {existing.pid}): "
                            "stop it with `fanflow down`")
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = EndpointServer(port=port, host=host, lambda_concurrency=lambda_concurrency,
                            compute_seconds=compute_seconds, kept_histories=kept_histories,
                            fan_in_batching=fan_in_batching, faults=faults, aws_limits=aws_limits,
                            time_scale=time_scale)
    try:
        server.start()
        try:
            state = EndpointState(url=server.url, pid=os.getpid(), port=server.port, started_at=time.time())
            state_file.parent.mkdir(parents=True, exist_ok=True)
            staging = state_file.with_name(f".{state_file.name}.{os.getpid()}")
            staging.write_text(state.to_json() + "\n")
            staging.replace(state_file)
            if on_ready is not None:
                on_ready(state)
            while not stopping.wait(0.5):
                pass
        finally:
            current = read_state(state_file)
            if current is not None and current.pid == os.getpid():
                state_file.unlink(missing_ok=True)
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _process_alive(pid: int) -> bool:
    """True while `pid` runs; an exited child its parent has not reaped yet (a zombie) is
    not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal check
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stop_endpoint(*, timeout: float = 30.0, state_file: Path | None = None) -> EndpointState | None:
    """Stop the endpoint the state file records (SIGTERM, then wait); remove the file.
    Returns the state stopped, or None when no endpoint was running. A state file whose
    endpoint does not answer is stale: it is removed and nothing is signalled, so that a
    recycled pid is never hit."""
    state_file = state_file or endpoint_file()
    state = read_state(state_file)
    if state is None:
        state_file.unlink(missing_ok=True)
        return None
    answer = health(state.url)
    if answer is None or answer.get("pid") != state.pid:
        state_file.unlink(missing_ok=True)
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _process_alive(state.pid):
        if time.monotonic() > deadline:
            raise EndpointError(f"the endpoint (pid {state.pid}) did not stop within {timeout:.0f} s of SIGTERM")
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        state_file.unlink(missing_ok=True)
    return state
