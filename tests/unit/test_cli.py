"""The command line refuses what it cannot do before any work starts (exit 2, no traceback, a
message naming the option and its range), says what it does, and helps. None of these
tests starts an emulator: each refusal comes first."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from fanflow import __version__, deployments, render
from fanflow.bench import BenchRow
from fanflow.cli import main
from fanflow.commands import bench
from fanflow.commands import infra as infra_commands
from fanflow.deployments import DeploymentOptions, EmbeddedDeployment, check_aws_credentials
from fanflow.errors import DeploymentError
from fanflow.render import CASE_TIME_LABEL, summary_tables
from lambda_fns import constants as c
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data_sets" / "dataset_5.json"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err



# -- every numeric option is range-checked when parsed -------------------------------------------
OUT_OF_RANGE = [
    (["run", "--cases", "5", "--compute-seconds", "inf"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["run", "--cases", "5", "--compute-seconds", "nan"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["run", "--cases", "5", "--compute-seconds", "-1"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["run", "--cases", "5", "--compute-seconds", "61"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["run", "--cases", "5", "--lambda-concurrency", "0"],
     "argument --lambda-concurrency: must be a whole number from 2 to 10000, got 0"),
    (["run", "--cases", "5", "--lambda-concurrency", "-3"],
     "argument --lambda-concurrency: must be a whole number from 2 to 10000, got -3"),
    (["run", "--cases", "5", "--show-cases", "-1"], "argument --show-cases: must be a whole number 0 or more, got -1"),
    (["run", "--cases", "0"], "argument --cases: must be a whole number from 1 to 1000000, got 0"),
    (["run", "--cases", "2000000"], "argument --cases: must be a whole number from 1 to 1000000, got 2000000"),
    (["run", "--cases", "5", "--deadline", "0"],
     f"argument --deadline: must be a number from 1 to {c.MAX_DEADLINE_SECONDS}"),
    (["run", "--cases", "5", "--timeout", "0"], "argument --timeout: must be a number greater than 0"),
    (["run", "--cases", "5", "--drop-rate", "1.5"], "argument --drop-rate: must be a number from 0 to 1"),
    (["run", "--cases", "5", "--seed", "-1"], "argument --seed: must be a whole number 0 or more"),
    (["run", "--cases", "5", "--kept-histories", "-2"], "argument --kept-histories: must be 0 or more"),
    (["generate", "--cases", "2000000"], "argument --cases: must be a whole number from 1 to 1000000, got 2000000"),
    (["bench", "--sizes", "10", "0"], "argument --sizes: must be a whole number from 1 to 1000000, got 0"),
    (["bench", "--compute-seconds", "inf"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["bench", "--lambda-concurrency", "0"], "argument --lambda-concurrency: must be a whole number from 2 to 10000"),
    (["up", "--compute-seconds", "-1"], "argument --compute-seconds: must be a number from 0 to 60"),
    (["up", "--port", "70000"], "argument --port: must be a whole number from 0 to 65535"),
    (["up", "--failure-rate", "2"], "argument --failure-rate: must be a number from 0 to 1, got 2"),
    (["up", "--detach", "--duplicate-rate", "-0.1"], "argument --duplicate-rate: must be a number from 0 to 1"),
    (["up", "--detach", "--drop-rate", "nan"], "argument --drop-rate: must be a number from 0 to 1"),
    (["up", "--conflict-rate", "x"], "argument --conflict-rate: expected a number from 0 to 1, got 'x'"),
    (["up", "--seed", "-1"], "argument --seed: must be a whole number 0 or more"),
    (["results", "r", "--state", "DONE"], "argument --state: expected states from SUCCEEDED, FAILED, TIMED_OUT"),
    (["results", "r", "--state", "FAILED,,nope"], "argument --state: expected states from SUCCEEDED"),
    (["results", "r", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["deploy", "--target", "aws", "--compute-seconds", "nan"], "argument --compute-seconds: must be a number"),
    (["deploy", "--target", "aws", "--retention-days", "0"], "argument --retention-days: must be a whole number"),
    (["watch", "r", "--interval", "0"], "argument --interval: must be a number greater than 0"),
    (["list", "--limit", "0"], "argument --limit: must be a whole number 1 or more"),
    (["down", "--timeout", "-5"], "argument --timeout: must be a number greater than 0"),
    (["status", ""], "argument REQUEST_ID: requestId must not be empty"),
    (["run", "--cases", "1", "--request-id", "x" * 257], "argument --request-id: requestId is 257 characters"),
]


@pytest.mark.parametrize(("argv", "message"), OUT_OF_RANGE, ids=lambda value: " ".join(value)[:40]
                         if isinstance(value, list) else "")
def test_an_option_out_of_range_is_refused_naming_the_option_and_its_range(
        capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.startswith(f"usage: fanflow {argv[0]}")  # the command's own usage
    assert out == ""


def test_an_unknown_option_shows_the_usage_of_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--bogus", str(SAMPLE))
    assert code == 2
    assert err.startswith("usage: fanflow run ") and "fanflow run: error: unrecognized arguments: --bogus" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert (code, out.strip()) == (0, f"fanflow {__version__}")


@pytest.mark.parametrize(("argv", "fragments"), [
    (["generate", "--help"], ["Write a request of N cases in the seed's format", "stdout"]),
    (["down", "--help"], ["Stop the `fanflow up` endpoint", "requests it held are gone"]),
    (["bench", "--help"], ["--variants VARIANT", "fanflow (this project's stack)", "--lambda-concurrency N",
                           "Lambda executions the embedded target runs at once"]),
    (["run", "--help"], ["--lambda-concurrency N", "refuses it", "for this run only",
                         "the kind of fault and the caseId only"]),
    (["up", "--help"], ["--failure-rate R", "apply to a case's first attempt only", "--faults-every-attempt",
                        "still runs in-process", "fanflow up --failure-rate 0.2 --seed 7 --detach"]),
    (["results", "--help"], ["--state STATE[,STATE...]", "repeatable or comma-separated", "--format {json,csv}",
                             "caseId,state,attempt,durationMs,error", "fanflow watch", "-o FILE",
                             "fanflow results req-1 --format csv -o req-1.csv"]),
])
def test_help_describes_every_command_and_option(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                 fragments: list[str]) -> None:
    code, out, _ = run_cli(capsys, *argv)
    flat = " ".join(out.split())
    assert code == 0
    for fragment in fragments:
        assert " ".join(fragment.split()) in flat


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "--help")
    for command in ("run", "generate", "deploy", "destroy", "up", "down", "bench", "status", "watch", "list",
                    "report", "worker", "results"):
        assert f"\n    {command} " in out
    assert "--version" in out


# -- requests ---------------------------------------------------------------------------------
def test_a_binary_request_file_is_refused_without_a_traceback(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code, out, err = run_cli(capsys, "run", str(binary))
    assert (code, out) == (2, "")
    assert f"fanflow: invalid request: {binary} is not UTF-8 text (byte 0x89 at offset 0)" in err


def test_a_numeric_case_id_is_named_as_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"requestId": "r", "requests": [{"caseId": 0}]}))
    code, _, err = run_cli(capsys, "run", str(request))
    assert code == 2
    assert "requests[0].caseId must be a non-empty string, got the number 0" in err


# -- generate --------------------------------------------------------------------------------
def test_generate_dash_writes_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "generate", "--cases", "3", "-o", "-", "--request-id", "order 42/2026 #a")
    assert code == 0
    assert json.loads(out) == {"requestId": "order 42/2026 #a", "length": "3",
                               "requests": [{"caseId": "0"}, {"caseId": "1"}, {"caseId": "2"}]}
    assert not (tmp_path / "-").exists()


def test_generate_writes_the_largest_request_run_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "max.json"
    code, _, err = run_cli(capsys, "generate", "--cases", str(c.MAX_CASES), "-o", str(path))
    assert code == 0 and f"wrote {c.MAX_CASES} cases to {path}" in err
    from lambda_fns.request_model import parse_request

    assert parse_request(path.read_text()).length == c.MAX_CASES


# -- files to write are checked before the work ---------------------------------------------
@pytest.mark.parametrize("argv", [
    ["generate", "--cases", "3", "-o", "/nonexistent/dir/x.json"],
    ["run", "--cases", "3", "--trace", "/nonexistent/dir/x.json"],
    ["bench", "--sizes", "1", "--plot", "/nonexistent/dir/x.png"],
])
def test_an_unwritable_output_is_refused_before_the_work(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setattr(deployments, "open_deployment", _must_not_start)
    monkeypatch.setattr(bench, "run_bench", _must_not_start)
    started = time.monotonic()
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert "/nonexistent/dir/x." in err and "directory /nonexistent/dir does not exist" in err
    assert time.monotonic() - started < 5


def test_report_plot_to_an_unwritable_path_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.json"
    trace.write_text("{}")
    code, _, err = run_cli(capsys, "report", str(trace), "--plot", "/nonexistent/p.png")
    assert code == 2 and "--plot /nonexistent/p.png: directory /nonexistent does not exist" in err


def _must_not_start(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the work must not start when an option is refused")


def test_bench_plot_without_matplotlib_is_refused_before_the_benchmark(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    monkeypatch.setattr(bench, "run_bench", _must_not_start)
    code, _, err = run_cli(capsys, "bench", "--sizes", "1", "--plot", str(tmp_path / "b.png"))
    assert code == 2 and "--plot needs matplotlib: pip install 'fanflow[plot]'" in err


# -- bench output --------------------------------------------------------------------------------
def test_bench_piped_prints_full_rows_once_and_says_on_stderr_what_runs(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "PreProcess history has 25002 events; a Standard execution on AWS fails at 25000 " * 2

    def fake_bench(sizes: list[int], variants: list[str], **kwargs: Any) -> list[BenchRow]:
        rows = []
        for number, (variant, cases) in enumerate([(v, n) for n in sizes for v in variants], start=1):
            kwargs["on_start"](variant, cases, number, len(sizes) * len(variants))
            rows.append(BenchRow(variant, cases, 1.5, 100.0, 1, 7, 1, c.STATUS_SUCCEEDED, reason))
        return rows

    monkeypatch.setattr(bench, "run_bench", fake_bench)
    monkeypatch.setattr("local.assembly.assembly_is_current", lambda context=None: True)
    code, out, err = run_cli(capsys, "bench", "--sizes", "10", "20")
    assert code == 0
    # THEN each row is on stdout once, whole (not cut at 80 columns)
    rows = [line for line in out.splitlines() if line.startswith(("│ fanflow ", "│ seed "))]
    assert len(rows) == 4 and all(reason.strip() in " ".join(line.split()) for line in rows)
    assert max(len(line) for line in out.splitlines()) > 80
    # AND stderr says which run is under way, without repeating the results
    assert [line for line in err.splitlines() if line.startswith("fanflow bench:")] == [
        "fanflow bench: run 1 of 4: fanflow, 10 cases", "fanflow bench: run 2 of 4: seed, 10 cases",
        "fanflow bench: run 3 of 4: fanflow, 20 cases", "fanflow bench: run 4 of 4: seed, 20 cases"]
    assert "SUCCEEDED" not in err


# -- honest labels ----------------------------------------------------------------------------
SUMMARY = {"requestId": "r", "status": c.STATUS_SUCCEEDED, "target": 3, "succeeded": 3, "failed": 0,
           "timedOut": [], "wallSeconds": 1.2, "computeMs": {"mean": 1530.0, "max": 1700, "total": 4590},
           "cases": [{"caseId": str(i), "state": c.CASE_SUCCEEDED, "durationMs": 1500} for i in range(3)]}


def rendered(tables: list[Any]) -> str:
    out = io.StringIO()
    console = render.output_console(out)
    for table in tables:
        console.print(table)
    return out.getvalue()


def test_the_case_time_is_labelled_as_wall_time_in_compute() -> None:
    text = rendered(summary_tables(SUMMARY, summary_runs=1, max_cases=20))
    assert CASE_TIME_LABEL == "case time in compute (wall)"
    assert f"{CASE_TIME_LABEL} │ mean 1530.0 ms, max 1700 ms" in text
    assert "compute time per case" not in text


def test_show_cases_zero_hides_the_case_table_and_n_shows_n() -> None:
    assert len(summary_tables(SUMMARY, summary_runs=1, max_cases=0)) == 1
    text = rendered(summary_tables(SUMMARY, summary_runs=1, max_cases=2))
    assert "Cases (first 2 of 3)" in text


# -- targets that cannot honour an option refuse it --------------------------------------------
@pytest.mark.parametrize("target", ["aws", "localstack"])
@pytest.mark.parametrize("option", [["--lambda-concurrency", "5"], ["--kept-histories", "all"]])
def test_embedded_settings_are_refused_off_the_embedded_target(capsys: pytest.CaptureFixture[str], target: str,
                                                               option: list[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--cases", "1", "--target", target, *option)
    assert code == 2
    assert f"fanflow: {option[0]} applies to the embedded target only; {target} has its own" in err


def test_a_server_that_is_not_localstack_is_named(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an HTTP server that answers everything with a page (not LocalStack)
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        code, _, err = run_cli(capsys, "run", "--cases", "1", "--target", "localstack")
    finally:
        server.shutdown()
    assert code == 1
    assert f"something answers at http://127.0.0.1:{server.server_port}, but it is not LocalStack" in err


def test_an_unreachable_sts_is_a_network_failure_not_rejected_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN credentials, and STS at an address where nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{free_port()}")
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="secret",
                                    region_name="eu-west-1")
    # WHEN they are checked  THEN the error says the network failed, not the credentials
    with pytest.raises(DeploymentError) as raised:
        check_aws_credentials(session)
    assert "cannot reach AWS STS to check the credentials (a network failure, not a credentials one" in str(
        raised.value)
    assert "rejected" not in str(raised.value)


# -- what the embedded target says it does ------------------------------------------------------
def test_a_start_that_synthesizes_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN sources newer than the synthesized app (the emulator itself stubbed out)
    monkeypatch.setattr("local.assembly.assembly_is_current", lambda context=None: False)
    told: list[str] = []
    target = EmbeddedDeployment(DeploymentOptions(notice=told.append))
    monkeypatch.setattr(target.emulator, "start", lambda: None)
    # WHEN it starts  THEN it says it synthesizes, before the silent seconds
    target.start()
    assert told[0] == "synthesizing the CDK app (the first run, or its sources changed): about 10 s"


# -- deploy, destroy, up ------------------------------------------------------------------------
def test_destroy_dry_run_lists_the_bucket_emptying(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra_commands, "check_cdk_tools", lambda target: "npx")
    code, out, _ = run_cli(capsys, "destroy", "--target", "aws", "--dry-run")
    lines = out.splitlines()
    empty = next(i for i, line in enumerate(lines) if line.startswith("# fanflow: empty the artifacts bucket"))
    destroy = next(i for i, line in enumerate(lines) if "cdk destroy" in line)
    assert code == 0 and empty < destroy
    assert c.OUTPUT_ARTIFACTS_BUCKET in lines[empty]


def test_an_end_of_life_node_gets_one_line_instead_of_jsii_s_banner() -> None:
    # GIVEN the environment the CDK app runs in under a Node.js older than jsii supports
    assert infra_commands.node_note(22) is None
    note = infra_commands.node_note(20)
    assert note is not None and "Node.js 20 is past its end of life" in note
    env = infra_commands.cdk_environment("aws", base=dict(os.environ), node=20)
    assert env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] == "20"
    # AND on this machine's node, loading the CDK libraries prints no banner (no byte strings)
    major = infra_commands.node_major()
    if major is None:
        pytest.skip("no node here")
    env = infra_commands.cdk_environment("aws", base=dict(os.environ), node=major)
    result = subprocess.run([sys.executable, "-c", "import aws_cdk"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "end-of-life" not in result.stderr and "b'" not in result.stderr


@pytest.mark.parametrize(("detached", "stop"), [(False, "stop: Ctrl-C or fanflow down"), (True, "stop: fanflow down")])
def test_up_says_how_to_stop_it(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                detached: bool, stop: str) -> None:
    import local.server

    def serve(**kwargs: Any) -> None:
        kwargs["on_ready"](local.server.EndpointState(url="http://127.0.0.1:1", pid=1, port=1))

    monkeypatch.setattr(local.server, "serve", serve)
    monkeypatch.setattr(infra_commands, "announce_synth", lambda: None)
    code, _, err = run_cli(capsys, "up", *(["--detached"] if detached else []))
    assert code == 0
    assert err.splitlines()[1].endswith(stop)


def test_up_gives_the_endpoint_its_faults_and_says_so(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import local.server

    served: dict[str, Any] = {}

    def serve(**kwargs: Any) -> None:
        served.update(kwargs)
        kwargs["on_ready"](local.server.EndpointState(url="http://127.0.0.1:1", pid=1, port=1))

    monkeypatch.setattr(local.server, "serve", serve)
    monkeypatch.setattr(infra_commands, "announce_synth", lambda: None)
    # WHEN `fanflow up` is given fault options
    code, _, err = run_cli(capsys, "up", "--failure-rate", "0.2", "--drop-rate", "0.05", "--seed", "7",
                           "--faults-every-attempt")
    # THEN the endpoint's emulator gets them, and the endpoint says what it injects
    assert code == 0
    plan = served["faults"]
    assert (plan.failure_rate, plan.drop_rate, plan.duplicate_rate, plan.seed, plan.every_attempt) == (
        0.2, 0.05, 0.0, 7, True)
    assert "fanflow: injecting faults: --failure-rate 0.2, --drop-rate 0.05, --seed 7 (every attempt)" in err
    # AND without them it injects none, and says nothing of faults
    code, _, err = run_cli(capsys, "up")
    assert code == 0 and not served["faults"].active and "faults" not in err


@pytest.mark.parametrize("argv", [
    ["--failure-rate", "0.2"],
    ["--duplicate-rate", "0.125", "--drop-rate", "1", "--conflict-rate", "0.3", "--seed", "9",
     "--faults-every-attempt"],
    ["--seed", "4"],
    [],
])
def test_a_detached_endpoint_gets_the_faults_asked_for(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    import local.server
    from fanflow.cli import build_parser

    started: list[list[str]] = []

    class Process:
        pid, returncode = 4242, None

        def __init__(self, command: list[str], **_: Any) -> None:
            started.append(command)

        def poll(self) -> None:
            return None

    monkeypatch.setattr(infra_commands.subprocess, "Popen", Process)
    monkeypatch.setattr(local.server, "read_state", lambda *_: local.server.EndpointState(
        url="http://127.0.0.1:1", pid=Process.pid, port=1))
    monkeypatch.setattr(infra_commands, "announce_synth", lambda: None)
    # WHEN `fanflow up --detach` is given fault options
    code, _, _ = run_cli(capsys, "up", "--detach", *argv)
    # THEN the process it starts is given the same faults
    assert code == 0
    [command] = started
    parser = build_parser()
    detached = parser.parse_args(command[command.index("fanflow.cli") + 1:])
    assert detached.detached and not detached.detach
    assert infra_commands.fault_plan(detached).settings() == infra_commands.fault_plan(
        parser.parse_args(["up", *argv])).settings()


def test_the_endpoint_describes_its_faults_and_reports_what_it_injected() -> None:
    from local.faults import FaultPlan
    from local.server import EndpointServer

    # GIVEN an endpoint with a fault plan that has failed a case of request "r"
    plan = FaultPlan(failure_rate=1.0, seed=3)
    plan.fail("r", "7")
    app = EndpointServer(faults=plan, kept_histories=1000)._with_fanflow_routes(lambda environ, start: [b"moto"])

    def get(path: str) -> dict[str, Any]:
        body = b"".join(app({"PATH_INFO": path}, lambda status, headers: None))
        return dict(json.loads(body))

    # WHEN a client asks it about itself THEN it names its faults
    assert get("/_fanflow/health")["faults"] == {"duplicateRate": 0.0, "failureRate": 1.0, "dropRate": 0.0,
                                                 "conflictRate": 0.0, "seed": 3, "everyAttempt": False}
    # AND what it injected, per request
    assert get("/_fanflow/injected-faults/r")["injectedFaults"]["failedCases"] == ["7"]
    assert get("/_fanflow/injected-faults/other")["injectedFaults"]["failedCases"] == []
    # AND an endpoint without faults says it has none
    plain = EndpointServer()._with_fanflow_routes(lambda environ, start: [b"moto"])
    body = json.loads(b"".join(plain({"PATH_INFO": "/_fanflow/injected-faults/r"}, lambda status, headers: None)))
    assert body["injectedFaults"] is None


@pytest.fixture
def stale_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state file naming an endpoint that has stopped: a dead pid, a closed port."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = tmp_path / "endpoint.json"
    port = free_port()
    state.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": dead.pid, "port": port}))
    monkeypatch.setenv("FANFLOW_ENDPOINT_FILE", str(state))
    yield state


def test_a_stopped_endpoint_is_reported_and_forgotten(stale_endpoint: Path) -> None:
    # WHEN a run looks for the endpoint  THEN it is told that it stopped, with its requests, and runs elsewhere
    told: list[str] = []
    assert deployments.find_endpoint(DeploymentOptions(notice=told.append)) is None
    assert len(told) == 1 and "has stopped, and the requests it held are gone with it" in told[0]
    assert not stale_endpoint.exists()


def test_ops_commands_without_an_endpoint_answer_at_once(capsys: pytest.CaptureFixture[str],
                                                         stale_endpoint: Path) -> None:
    started = time.monotonic()
    code, out, err = run_cli(capsys, "status", "order 42/2026 #a")
    assert code == 1 and out == ""
    assert "no request 'order 42/2026 #a' on the embedded target: no `fanflow up` endpoint is running" in err
    code, out, err = run_cli(capsys, "list", "--json")
    assert code == 0 and json.loads(out) == {"total": 0, "requests": []}
    assert "no `fanflow up` endpoint is running" in err
    code, _, err = run_cli(capsys, "watch", "r")
    assert code == 1 and "fanflow up" in err
    assert time.monotonic() - started < 3, "no emulator may be started to report nothing"


def test_a_trace_that_cannot_be_written_after_the_run_loses_only_the_trace(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path) -> None:
    # GIVEN a run's timeline and a path that stopped being writable during the run
    from fanflow.commands.run import write_trace

    assert write_trace({"requestId": "r", "events": []}, tmp_path / "gone" / "t.json") is False
    # THEN it says so in one line (the summary was printed before)
    err = capsys.readouterr().err
    assert err.startswith(f"fanflow: could not write the timeline to {tmp_path / 'gone' / 't.json'}: ")
