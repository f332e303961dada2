"""LambdaRunner (local/lambda_runner.py): in-process Lambda "containers" built from a deployed
zip, with the function's environment at import, a context object, stats and a concurrency limit."""

from __future__ import annotations

import hashlib
import io
import json
import os
import textwrap
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from local.lambda_runner import LambdaRunner

ACCOUNT_PREFIX = "arn:aws:lambda:us-east-1:123456789012:function:"

PKG_INIT = textwrap.dedent("""
    import os

    GREETING_AT_PACKAGE_IMPORT = os.environ.get("GREETING")
""")

PKG_MOD = textwrap.dedent("""
    import os
    import threading
    import time

    from . import GREETING_AT_PACKAGE_IMPORT

    # Read once, at import, as fanflow's handlers read their configuration.
    CAPTURED = {
        "GREETING": os.environ.get("GREETING"),
        "ONLY_IN_FUNCTION": os.environ.get("ONLY_IN_FUNCTION"),
        "FANFLOW_LOG_FILE": os.environ.get("FANFLOW_LOG_FILE"),
    }

    _lock = threading.Lock()
    _active = 0
    max_active = 0
    calls = 0


    def handler(event, context):
        global _active, max_active, calls
        if event.get("fail"):
            raise ValueError("asked to fail")
        with _lock:
            calls += 1
            _active += 1
            max_active = max(max_active, _active)
        try:
            time.sleep(event.get("sleep", 0))
        finally:
            with _lock:
                _active -= 1
        return {
            "env": CAPTURED,
            "package_greeting": GREETING_AT_PACKAGE_IMPORT,
            "function_name": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "event": event,
            "max_active": max_active,
            "calls": calls,
        }
""")


def code_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("pkg/__init__.py", PKG_INIT)
        archive.writestr("pkg/mod.py", PKG_MOD)
    return buf.getvalue()


CODE = code_zip()


def make_fn(name: str = "fn-a", env: dict[str, str] | None = None, timeout: int = 30) -> SimpleNamespace:
    """What the runner reads of moto's LambdaFunction."""
    return SimpleNamespace(
        function_arn=ACCOUNT_PREFIX + name,
        function_name=name,
        code_sha_256=hashlib.sha256(CODE).hexdigest(),
        code_bytes=CODE,
        handler="pkg.mod.handler",
        environment_vars=env if env is not None else {"GREETING": f"hello from {name}"},
        version="$LATEST",
        memory_size=128,
        timeout=timeout,
    )


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "outer")
    monkeypatch.delenv("ONLY_IN_FUNCTION", raising=False)
    monkeypatch.delenv("FANFLOW_LOG_FILE", raising=False)


@pytest.fixture
def runner(tmp_path: Path, clean_environ: None) -> LambdaRunner:
    return LambdaRunner(code_root=tmp_path / "code")


def invoke(runner: LambdaRunner, fn: Any, event: Any) -> tuple[Any, bool, str]:
    payload, errored, logs = runner.invoke(fn, event)
    return json.loads(payload), errored, logs


def test_handler_result_is_the_payload(runner: LambdaRunner) -> None:
    # GIVEN a function with a 30 s timeout
    fn = make_fn("fn-a", timeout=30)
    # WHEN it is invoked
    result, errored, logs = invoke(runner, fn, {"requestId": "r-1"})
    # THEN the payload is the handler's result, as JSON
    assert errored is False and logs == ""
    assert result["event"] == {"requestId": "r-1"}
    # AND the handler got a context for this function, with its remaining time
    assert result["function_name"] == "fn-a"
    assert 0 < result["remaining_ms"] <= 30_000
    # AND an invocation without an event gets {}
    assert invoke(runner, fn, None)[0]["event"] == {}


def test_functions_sharing_code_see_their_own_environment(runner: LambdaRunner) -> None:
    # GIVEN two functions with the same code but different environment variables
    fn_a = make_fn("fn-a", {"GREETING": "hello from a", "ONLY_IN_FUNCTION": "a"})
    fn_b = make_fn("fn-b", {"GREETING": "hello from b"})
    # WHEN both are invoked, interleaved
    a1 = invoke(runner, fn_a, {})[0]
    b1 = invoke(runner, fn_b, {})[0]
    a2 = invoke(runner, fn_a, {})[0]
    # THEN each container captured its own environment at import, package and module alike
    assert a1["env"]["GREETING"] == a2["env"]["GREETING"] == "hello from a"
    assert a1["package_greeting"] == "hello from a"
    assert a1["env"]["ONLY_IN_FUNCTION"] == "a"
    assert b1["env"]["GREETING"] == b1["package_greeting"] == "hello from b"
    # AND a variable the function does not set comes from the process, not from the other function
    assert b1["env"]["ONLY_IN_FUNCTION"] is None


def test_each_function_has_its_own_container(runner: LambdaRunner) -> None:
    # GIVEN two functions with the same code and the same environment
    env = {"GREETING": "same"}
    fn_x, fn_y = make_fn("fn-own-x", env), make_fn("fn-own-y", env)
    # WHEN one is invoked twice and the other once
    invoke(runner, fn_x, {})
    x2 = invoke(runner, fn_x, {})[0]
    y1 = invoke(runner, fn_y, {})[0]
    # THEN a container is reused by its own function (warm start) but not shared with the other
    assert x2["calls"] == 2
    assert y1["calls"] == 1


def test_changed_environment_gets_a_new_container(runner: LambdaRunner) -> None:
    # GIVEN a function invoked once
    assert invoke(runner, make_fn("fn-a", {"GREETING": "v1"}), {})[0]["env"]["GREETING"] == "v1"
    # WHEN its environment is updated (update-function-configuration)
    result = invoke(runner, make_fn("fn-a", {"GREETING": "v2"}), {})[0]
    # THEN the next invocation cold-starts with the new values
    assert result["env"]["GREETING"] == "v2"


def test_os_environ_is_restored_after_cold_start(runner: LambdaRunner) -> None:
    # GIVEN the process environment
    before = dict(os.environ)
    # WHEN a function whose environment overrides one variable and adds another cold-starts
    result = invoke(runner, make_fn("fn-a", {"GREETING": "inner", "ONLY_IN_FUNCTION": "x"}), {})[0]
    # THEN the handler saw its values at import
    assert result["env"]["GREETING"] == "inner" and result["env"]["ONLY_IN_FUNCTION"] == "x"
    # AND the process environment is exactly as before
    assert dict(os.environ) == before
    assert os.environ["GREETING"] == "outer" and "ONLY_IN_FUNCTION" not in os.environ


def test_handler_exception_is_a_function_error(runner: LambdaRunner) -> None:
    # GIVEN a handler that raises
    fn = make_fn("fn-a")
    # WHEN invoked
    result, errored, logs = invoke(runner, fn, {"fail": True, "requestId": "r-err"})
    # THEN the invocation is errored, with Lambda's error payload
    assert errored is True
    assert result["errorType"] == "ValueError"
    assert result["errorMessage"] == "asked to fail"
    assert isinstance(result["stackTrace"], list) and "ValueError: asked to fail" in logs
    # AND it is counted, with the error recorded
    assert runner.stats.count("fn-a") == 1
    assert runner.stats.count("fn-a", "r-err") == 1
    assert runner.stats.errors == [("fn-a", "ValueError: asked to fail")]
    # AND the container still serves the next invocation
    assert invoke(runner, fn, {})[1] is False


def test_stats_count_by_function_and_request_id(runner: LambdaRunner) -> None:
    # GIVEN two functions
    fn_a, fn_b = make_fn("fn-a"), make_fn("fn-b")
    # WHEN invoked with requestId at the top level, in an EventBridge detail, as a JSON string, or not at all
    invoke(runner, fn_a, {"requestId": "r-1"})
    invoke(runner, fn_a, {"detail": {"requestId": "r-1"}, "detail-type": "X"})
    invoke(runner, fn_a, {"detail": {"requestId": "r-2"}})
    invoke(runner, fn_a, {"other": 1})
    invoke(runner, fn_b, {"requestId": "r-1"})
    runner.stats.record("fn-b", json.dumps({"requestId": "r-3"}), None)
    # THEN counts are per function and per (function, requestId)
    assert runner.stats.count("fn-a") == 4
    assert runner.stats.count("fn-b") == 2
    assert runner.stats.count("fn-a", "r-1") == 2
    assert runner.stats.count("fn-a", "r-2") == 1
    assert runner.stats.count("fn-b", "r-1") == 1
    assert runner.stats.count("fn-b", "r-3") == 1
    assert runner.stats.count("fn-c") == 0
    assert runner.stats.errors == []


def test_concurrency_limit(tmp_path: Path, clean_environ: None) -> None:
    # GIVEN a runner limited to 2 concurrent handlers
    runner = LambdaRunner(concurrency=2, code_root=tmp_path / "code")
    fn = make_fn("fn-concurrency")
    results: list[tuple[Any, bool, str]] = []
    results_lock = threading.Lock()

    def call() -> None:
        outcome = invoke(runner, fn, {"sleep": 0.2})
        with results_lock:
            results.append(outcome)

    # WHEN 6 invocations of a slow handler are made at once
    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN all of them ran, and never more than 2 at a time (and 2 did run together)
    assert len(results) == 6 and not any(errored for _, errored, _ in results)
    assert max(result["max_active"] for result, _, _ in results) == 2
    assert runner.stats.count("fn-concurrency") == 6


def test_log_file_is_set_for_the_handler_import(tmp_path: Path, clean_environ: None) -> None:
    # GIVEN a runner with a log file
    log_file = tmp_path / "logs" / "lambda.log"
    runner = LambdaRunner(code_root=tmp_path / "code", log_file=log_file)
    # WHEN a function cold-starts
    result = invoke(runner, make_fn("fn-a"), {})[0]
    # THEN its import saw FANFLOW_LOG_FILE, and the process environment did not keep it
    assert result["env"]["FANFLOW_LOG_FILE"] == str(log_file)
    assert "FANFLOW_LOG_FILE" not in os.environ


def test_no_log_file_leaves_it_unset(runner: LambdaRunner) -> None:
    # GIVEN a runner without a log file  WHEN a function cold-starts  THEN FANFLOW_LOG_FILE is unset
    assert invoke(runner, make_fn("fn-a"), {})[0]["env"]["FANFLOW_LOG_FILE"] is None


def test_a_new_runner_cold_starts_afresh(tmp_path: Path, clean_environ: None) -> None:
    # GIVEN a function invoked once by a runner
    fn = make_fn("fn-fresh", {"GREETING": "fresh"})
    first = LambdaRunner(code_root=tmp_path / "first")
    assert invoke(first, fn, {})[0]["calls"] == 1
    # WHEN another runner (another embedded emulator in the same process) invokes it
    second = LambdaRunner(code_root=tmp_path / "second")
    result = invoke(second, fn, {})[0]
    # THEN it cold-starts its own container, from its own code root
    assert result["calls"] == 1
    assert (tmp_path / "second").is_dir()


def test_a_run_counts_from_its_start(tmp_path: Path, clean_environ: None) -> None:
    # GIVEN a handler still running (its side effects may already be visible, as a
    # Summary's final status is before it returns)
    runner = LambdaRunner(code_root=tmp_path / "code")
    fn = make_fn("fn-running")
    thread = threading.Thread(target=invoke, args=(runner, fn, {"sleep": 0.5, "requestId": "r-run"}))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while runner.stats.count("fn-running", "r-run") == 0:
            assert time.monotonic() < deadline, "the running handler was not counted"
            time.sleep(0.01)
        # THEN it is counted already, once
        assert thread.is_alive() and runner.stats.count("fn-running", "r-run") == 1
    finally:
        thread.join(timeout=30)
    assert runner.stats.count("fn-running") == 1 and runner.stats.errors == []
