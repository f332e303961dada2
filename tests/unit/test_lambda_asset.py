"""infra/lambda_asset.py: the staged asset carries everything the handlers import that the
Lambda Python runtime lacks (Powertools, the X-Ray SDK, wrapt, typing_extensions), without
caches or native code, with a stable hash; and, imported from the asset alone as Lambda
would, the handlers trace their invocations to the X-Ray daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aws_cdk import FileSystem

from infra import lambda_asset
from lambda_fns import constants as c

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"

PROBE = textwrap.dedent("""
    import json, sys
    asset = sys.argv[1]
    sys.path.insert(0, asset)  # as Lambda puts /var/task first
    import botocore.client
    from lambda_fns import compute, emit, prepare, summary, workflow_step
    from lambda_fns.telemetry import Telemetry, log

    telemetry = Telemetry("probe")

    @telemetry.instrument
    def handler(event, context):
        log(telemetry.logger, 20, "traced")
        return {"payload": "never in the trace"}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "probe", 128, "aws-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"

    handler({"detail": {"requestId": "req-trace", "request": {"caseId": "4"}}}, Context())
    vendored = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "typing_extensions", "lambda_fns")
    print(json.dumps({
        "outside": sorted(name for name, module in sys.modules.items()
                          if name.split(".")[0] in vendored and getattr(module, "__file__", None)
                          and not module.__file__.startswith(asset)),
        "loaded": sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in vendored}),
        "tracer_disabled": telemetry.tracer.disabled,
        "botocore_patched": hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__"),
        "native": sorted(name for name, module in sys.modules.items() if name.split(".")[0] in vendored
                         and str(getattr(module, "__file__", "")).endswith(".so")),
    }))
""")


@pytest.fixture(scope="module")
def asset() -> Path:
    return lambda_asset.staged_source()


def test_asset_holds_handlers_and_vendored_sources_only(asset: Path) -> None:
    # GIVEN the staged asset WHEN its files are listed
    files = [p for p in asset.rglob("*") if p.is_file()]
    tops = {p.relative_to(asset).parts[0] for p in files}
    # THEN it holds the handler package and the vendored packages, nothing else
    assert tops == {"lambda_fns", "aws_lambda_powertools", "aws_xray_sdk", "wrapt", "typing_extensions.py"}
    # AND no caches, stubs or native extensions (built for this machine, not for Lambda's arm64)
    assert not [p for p in files if "__pycache__" in p.parts or p.suffix in (".pyc", ".so", ".c", ".pyi")]
    # AND it stays small: Powertools' utilities fanflow does not use are left out
    assert not (asset / "aws_lambda_powertools" / "event_handler").exists()
    assert sum(p.stat().st_size for p in files) < 2_000_000


def test_asset_hash_is_stable_across_stagings(asset: Path) -> None:
    # GIVEN the asset staged once WHEN it is staged again into a new directory
    lambda_asset.staged_source.cache_clear()
    try:
        again = lambda_asset.staged_source()
    finally:
        lambda_asset.staged_source.cache_clear()
    # THEN CDK computes the same fingerprint, so an unchanged asset is not re-uploaded
    assert again != asset
    assert FileSystem.fingerprint(str(again)) == FileSystem.fingerprint(str(asset))


def test_missing_vendored_part_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a vendored part that the installed package does not have
    monkeypatch.setitem(lambda_asset.VENDORED, "wrapt", ("no_such_module.py",))
    # WHEN the asset is staged THEN it stops, naming the part
    with pytest.raises(lambda_asset.VendoringError, match=r"wrapt/no_such_module\.py"):
        lambda_asset.vendor(tmp_path)


def test_handlers_import_from_the_asset_alone_and_trace_to_the_daemon(asset: Path, tmp_path: Path) -> None:
    # GIVEN a Lambda-like environment: the asset as the task root, a sampled trace header and
    # an X-Ray daemon (a UDP socket) to receive segments
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.pop(c.ENV_LOG_FILE, None)
    env.update({
        "LAMBDA_TASK_ROOT": str(asset), "AWS_LAMBDA_FUNCTION_NAME": "probe", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        c.ENV_EVENTBUS_NAME: "bus", c.ENV_EVENTBUS_SOURCE: c.COMPUTE_SOURCE,
        c.ENV_EVENTBUS_DETAILTYPE: c.COMPLETION_DETAIL_TYPE, c.ENV_RESULTS_TABLE: "results",
        c.ENV_COMPUTE_SECONDS: "0", c.ENV_RETENTION_SECONDS: "60", c.ENV_COUNTER_TABLE: "counter",
        c.ENV_COMPUTE_TYPE: c.COMPUTE_TYPE_LAMBDA, c.ENV_FANOUT_ATTEMPTS: "3",
        c.ENV_FANOUT_BACKOFF_BASE_SECONDS: "1", c.ENV_FANOUT_BACKOFF_MAX_SECONDS: "2",
        c.ENV_ARTIFACTS_BUCKET: "bucket", c.ENV_COMPUTE_CONCURRENCY: "100", c.ENV_CHUNK_CASES: "1000",
        c.ENV_FANOUT_CONCURRENCY: "10",
    })
    # WHEN the handlers and an instrumented probe are imported from the asset and the probe runs
    result = subprocess.run([sys.executable, "-c", PROBE, str(asset)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    *log_lines, report_line = result.stdout.strip().splitlines()
    report = json.loads(report_line)
    # THEN every vendored module came from the asset, and the handlers loaded them all
    assert report["outside"] == []
    assert report["loaded"] == ["aws_lambda_powertools", "aws_xray_sdk", "lambda_fns", "typing_extensions", "wrapt"]
    # AND tracing is on, boto3 calls are traced, and wrapt runs without its C extension
    assert report["tracer_disabled"] is False
    assert report["botocore_patched"] is True
    assert report["native"] == []
    # AND the log line carries the trace id beside the request and case
    [line] = [json.loads(text) for text in log_lines]
    assert (line["xray_trace_id"], line["requestId"], line["caseId"]) == (TRACE_ID, "req-trace", "4")
    # AND the daemon received the handler's subsegment, annotated with the ids and without the response
    header, body = daemon.recvfrom(65536)[0].decode().split("\n", 1)
    daemon.close()
    assert json.loads(header)["format"] == "json"
    subsegment = json.loads(body)
    assert subsegment["trace_id"] == TRACE_ID
    assert subsegment["name"] == "## handler"
    assert subsegment["annotations"]["requestId"] == "req-trace"
    assert subsegment["annotations"]["caseId"] == "4"
    assert "never in the trace" not in body
