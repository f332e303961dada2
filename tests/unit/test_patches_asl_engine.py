"""Adaptations 5, 8 and 15 (local/moto_patches/asl_engine.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import boto3
import jsonpath_ng.ext
import moto.stepfunctions.parser.asl.utils.boto_client as boto_client
import moto.stepfunctions.parser.asl.utils.json_path as json_path
import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from local import moto_patches
from local.moto_patches import asl_engine
from tests.patch_helpers import (
    ACCOUNT,
    ENGINE_CLIENT_MODULES,
    PASS_DEFINITION,
    REGION,
    ROLE_ARN,
    Recorder,
    create_function,
    get,
    make_table,
    wait_for_execution,
)

# moto's own functions, taken before any test installs the patches.
assert not moto_patches.installed()
ORIGINAL_ASL_PARSE = AmazonStateLanguageParser.parse


# -- 5. Engine caches -----------------------------------------------------------------------
def test_unpatched_engine_parses_and_builds_clients_anew(unpatched: None) -> None:
    # GIVEN moto without the patches
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory  # noqa: F401

    # THEN the engine parses a JSONPath anew on each use
    assert json_path.parse is jsonpath_ng.ext.parse
    assert json_path.parse("$.detail.n") is not json_path.parse("$.detail.n")
    # AND builds a new boto3 client on each call
    assert boto_client.boto_client_for(REGION, "lambda") is not boto_client.boto_client_for(REGION, "lambda")
    # AND its modules hold `boto_client_for` by name, so patching boto_client alone would miss them
    for name in ENGINE_CLIENT_MODULES:
        assert sys.modules[name].boto_client_for is boto_client.boto_client_for, name


def test_patched_engine_caches(recorder: Recorder) -> None:
    # GIVEN the patches
    # WHEN the engine parses the same JSONPath twice  THEN it gets the identical parsed object
    assert json_path.parse is moto_patches._jsonpath
    assert json_path.parse("$.detail.n") is json_path.parse("$.detail.n")
    assert json_path.extract_json("$.detail.n", {"detail": {"n": 3}}) == 3
    # AND every engine module that imported `boto_client_for` has the one cached variant
    cached = boto_client.boto_client_for
    assert cached.__module__ == asl_engine.__name__
    for name in ENGINE_CLIENT_MODULES:
        assert sys.modules[name].boto_client_for is cached, name
    # AND it returns one client per (region, service)
    assert cached(REGION, "lambda") is cached(REGION, "lambda")
    assert cached(REGION, "lambda") is not cached(REGION, "sqs")
    assert cached(REGION, "lambda") is not cached("eu-west-1", "lambda")


# -- 5b. Definition parse trees -------------------------------------------------------------
CHOICE_DEFINITION = json.dumps({
    "StartAt": "Route",
    "States": {
        "Route": {"Type": "Choice", "Default": "Small",
                  "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"}]},
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "Next": "Hold"},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "Next": "Hold"},
        # Keeps both executions running at the same time.
        "Hold": {"Type": "Wait", "Seconds": 1, "End": True},
    },
})


BROKEN_DEFINITION = '{"StartAt": "P"'


def count_antlr_parses(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Counts every ANTLR parse of a whole state machine definition."""
    calls: list[None] = []
    original = ASLParser.state_machine

    def counting(self: ASLParser) -> Any:
        calls.append(None)
        return original(self)

    monkeypatch.setattr(ASLParser, "state_machine", counting)
    return calls


def run_two_executions_at_once(session: boto3.session.Session) -> list[dict[str, Any]]:
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="choice", definition=CHOICE_DEFINITION, roleArn=ROLE_ARN)
    arns = [sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=f"run-{n}",
                                input=json.dumps({"n": n}))["executionArn"] for n in (9, 1)]
    assert {sfn.describe_execution(executionArn=arn)["status"] for arn in arns} == {"RUNNING"}
    return [wait_for_execution(sfn, arn) for arn in arns]


def test_unpatched_definition_is_parsed_anew_on_every_call(unpatched: None) -> None:
    # GIVEN moto without the patches
    assert AmazonStateLanguageParser.parse is ORIGINAL_ASL_PARSE
    # WHEN the same definition is parsed twice
    first_program, first_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    # THEN ANTLR built a new tree each time, and new evaluation components
    assert first_tree is not second_tree
    assert first_tree.getText() == second_tree.getText()
    assert first_program is not second_program


def test_unpatched_every_execution_parses_the_definition(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto without the patches, counting ANTLR parses
    parses = count_antlr_parses(monkeypatch)
    # WHEN a state machine is created and two executions of it run
    outputs = [json.loads(d["output"]) for d in run_two_executions_at_once(session)]
    # THEN the definition was parsed at creation and once more for each execution
    assert outputs == [{"n": 9, "size": "big"}, {"n": 1, "size": "small"}]
    assert len(parses) == 3


def test_patched_definition_parse_tree_is_cached(recorder: Recorder) -> None:
    # GIVEN the patches
    assert AmazonStateLanguageParser.parse is not ORIGINAL_ASL_PARSE
    # WHEN the same definition is parsed twice
    first_program, first_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    second_program, second_tree = AmazonStateLanguageParser.parse(PASS_DEFINITION)
    # THEN both get the one ANTLR tree, the one moto would have built
    assert first_tree is second_tree
    moto_program, moto_tree = ORIGINAL_ASL_PARSE(PASS_DEFINITION)
    assert first_tree.getText() == moto_tree.getText()
    # AND both share the evaluation components, of the kind moto builds, with heap keys set
    assert first_program is second_program
    assert type(first_program) is type(moto_program)
    assert first_program.__dict__.get("_EvalComponent__heap_key") is not None
    # AND another definition gets another tree
    assert AmazonStateLanguageParser.parse(CHOICE_DEFINITION)[1] is not first_tree


def test_patched_parallel_definitions_get_their_own_components(recorder: Recorder) -> None:
    # GIVEN a definition with a Parallel state (its branches keep per-evaluation state)
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}]}}})
    # WHEN it is parsed twice  THEN the tree is shared but the components are not
    first_program, first_tree = AmazonStateLanguageParser.parse(definition)
    second_program, second_tree = AmazonStateLanguageParser.parse(definition)
    assert first_tree is second_tree
    assert first_program is not second_program


def test_patched_definition_syntax_error_still_raises(recorder: Recorder) -> None:
    # GIVEN the patches, and the error moto reports for a truncated definition
    with pytest.raises(ASLParserException) as moto_error:
        ORIGINAL_ASL_PARSE(BROKEN_DEFINITION)
    # WHEN it is parsed, twice (a failure must not be cached as a tree)
    for _ in range(2):
        # THEN it raises the same ASLParserException
        with pytest.raises(ASLParserException) as patched_error:
            AmazonStateLanguageParser.parse(BROKEN_DEFINITION)
        assert patched_error.value.errors == moto_error.value.errors


def test_patched_concurrent_executions_share_the_tree_not_the_state(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the patches, counting ANTLR parses
    parses = count_antlr_parses(monkeypatch)
    # WHEN two executions of one Choice state machine, with different inputs, run at the same time
    described = run_two_executions_at_once(session)
    # THEN both succeed, each with the output of its own input
    assert [d["status"] for d in described] == ["SUCCEEDED", "SUCCEEDED"]
    assert [json.loads(d["output"]) for d in described] == [{"n": 9, "size": "big"}, {"n": 1, "size": "small"}]
    # AND the definition was parsed only once, when the state machine was created
    assert len(parses) == 1


# -- 5 (continued). ResultPath parses ---------------------------------------------------------
def test_patched_result_path_parses_are_cached(recorder: Recorder) -> None:
    # GIVEN the patches  WHEN ResultPath's JSONPath parser is asked twice for one path
    import jsonpath_ng
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path

    # THEN it is no longer jsonpath_ng's own (which builds a parser per call), and returns one object
    assert result_path.parse is not jsonpath_ng.parse
    assert result_path.parse("$.a.b") is result_path.parse("$.a.b")
    assert str(result_path.parse("$.a.b")) == str(jsonpath_ng.parse("$.a.b"))


def test_unpatched_result_path_parses_anew() -> None:
    import jsonpath_ng
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path

    assert not moto_patches.installed()
    assert result_path.parse is jsonpath_ng.parse
    assert jsonpath_ng.parse("$.a") is not jsonpath_ng.parse("$.a")


# -- 8. Task states in the calling thread; execution names indexed --------------------------
PUT_ITEM_DEFINITION = json.dumps({
    "StartAt": "Put",
    "States": {"Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True,
                       "Parameters": {"TableName": "t", "Item": {"pk": {"S.$": "$.pk"}}},
                       "ResultPath": "$.put"}},
})


def threads_started_by(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch,
                       definition: str) -> tuple[list[str], dict[str, Any]]:
    """Runs one execution of `definition` and names every thread started meanwhile."""
    make_table(session.client("dynamodb"))
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="put", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started: list[str] = []
    original_start = threading.Thread.start
    # Only the threads this execution starts, directly or through the threads it started: an
    # execution left running by an earlier test (a PreProcess waiting for its deadline) may
    # start threads meanwhile.
    ours = {threading.current_thread()}

    def counting_start(self: threading.Thread) -> None:
        if threading.current_thread() in ours:
            started.append(getattr(self._target, "__qualname__", repr(self._target)))  # type: ignore[attr-defined]
            ours.add(self)
        original_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    arn = sfn.start_execution(stateMachineArn=machine, name="one", input=json.dumps({"pk": "a"}))["executionArn"]
    described = wait_for_execution(sfn, arn)
    monkeypatch.undo()
    return started, described


def test_unpatched_every_execution_and_task_state_gets_a_thread(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    started, described = threads_started_by(session, monkeypatch, PUT_ITEM_DEFINITION)
    assert described["status"] == "SUCCEEDED"
    # the execution's worker, then the program's thread, then one for the Task state
    assert len(started) == 3, started
    assert any("_exec_and_notify" in name for name in started)


def test_patched_task_state_runs_in_the_execution_thread(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    started, described = threads_started_by(session, monkeypatch, PUT_ITEM_DEFINITION)
    # THEN only the execution's worker thread is started, and the Task state's result is the same
    assert described["status"] == "SUCCEEDED"
    assert len(started) == 1, started
    assert json.loads(described["output"]) == {"pk": "a", "put": {}}
    assert get(session.client("dynamodb"), "a") == {"pk": {"S": "a"}}


def test_patched_task_state_with_timeout_still_times_out(recorder: Recorder,
                                                         session: boto3.session.Session) -> None:
    # GIVEN a Lambda Task state with TimeoutSeconds 1, whose function takes 3 s
    function_arn = create_function(session)
    recorder.seconds = 3
    definition = json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 1, "End": True,
        "Parameters": {"FunctionName": function_arn, "Payload": {}}}}})
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="slow", definition=definition, roleArn=ROLE_ARN)["stateMachineArn"]
    started = time.monotonic()
    arn = sfn.start_execution(stateMachineArn=machine, name="slow-1")["executionArn"]
    described = wait_for_execution(sfn, arn)
    # THEN the state times out after its 1 s, as on AWS
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Timeout"
    assert time.monotonic() - started < 2.8


def test_patched_finished_threads_are_not_kept(recorder: Recorder, session: boto3.session.Session) -> None:
    from moto.stepfunctions.parser.utils import TMP_THREADS

    # GIVEN many finished threads in moto's list
    finished = []
    for _ in range(300):
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        finished.append(thread)
    TMP_THREADS.extend(finished)
    # WHEN an execution runs  THEN the list no longer holds them (only threads still running,
    # such as executions other tests left waiting)
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name="pass", definition=PASS_DEFINITION, roleArn=ROLE_ARN)["stateMachineArn"]
    wait_for_execution(sfn, sfn.start_execution(stateMachineArn=machine, name="p")["executionArn"])
    held = {id(thread) for thread in TMP_THREADS}
    assert not any(id(thread) in held for thread in finished)


@pytest.mark.parametrize("patched", [False, True], ids=["unpatched", "patched"])
def test_execution_name_reuse(patched: bool, session: boto3.session.Session) -> None:
    # The same rules with and without the index: a running execution started again with the same
    # name and input is that execution; any other reuse of the name is refused.
    rec = Recorder()
    if patched:
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        sfn = session.client("stepfunctions")
        machine = sfn.create_state_machine(name="hold", definition=CHOICE_DEFINITION,
                                           roleArn=ROLE_ARN)["stateMachineArn"]
        for n in range(50):
            sfn.start_execution(stateMachineArn=machine, name=f"other-{n}", input=json.dumps({"n": n}))
        first = sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')["executionArn"]
        again = sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')["executionArn"]
        assert again == first
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 2}')
        wait_for_execution(sfn, first)
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="same", input='{"n": 1}')
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            sfn.start_execution(stateMachineArn=machine, name="other-7", input='{"n": 7}')
    finally:
        moto_patches.uninstall()


# -- 8 (continued). Reading a JSONPath copies what can change ---------------------------------
def test_patched_jsonpath_reads_copy_only_what_can_change(recorder: Recorder) -> None:
    from moto.stepfunctions.parser.asl.eval.states import States

    data = {"detail": {"requestId": "r-1", "request": {"caseId": "7"}, "n": 3}}
    # strings and numbers are returned as they are (they cannot change) ...
    assert States._extract("$.detail.requestId", data) == "r-1"
    assert States._extract("$.detail.n", data) == 3
    # ... objects are still copies, so a state changing its input cannot reach back
    request = States._extract("$.detail.request", data)
    assert request == {"caseId": "7"} and request is not data["detail"]["request"]
    whole = States._extract(None, data)
    assert whole == data and whole["detail"] is not data["detail"]


# -- 15. Executions started by a delivery run in its thread -----------------------------------
WAIT_DEFINITION = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}})


def start_waiting_execution(session: boto3.session.Session, name: str) -> tuple[Any, float]:
    """(the execution, seconds StartExecution took) for a machine that waits 1 s."""
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"wait-{name}", definition=WAIT_DEFINITION,
                                       roleArn=ROLE_ARN)["stateMachineArn"]
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    started = time.monotonic()
    execution = backend.start_execution(machine, name=name, execution_input="{}")
    return execution, time.monotonic() - started


def test_unpatched_start_execution_returns_while_it_runs(unpatched: None, session: boto3.session.Session) -> None:
    execution, seconds = start_waiting_execution(session, "async")
    assert seconds < 0.5 and execution.exec_status == "RUNNING"
    wait_for_execution(session.client("stepfunctions"), execution.exec_arn)


def test_patched_executions_started_inline_run_before_start_returns(recorder: Recorder,
                                                                    session: boto3.session.Session) -> None:
    # GIVEN the patches, outside the block  THEN executions still run in threads of their own
    execution, seconds = start_waiting_execution(session, "outside")
    assert seconds < 0.5 and execution.exec_status == "RUNNING"
    # WHEN an execution is started inside executions_inline()
    threads = threading.active_count()
    with moto_patches.executions_inline():
        inline, seconds = start_waiting_execution(session, "inside")
        # THEN it has run to its end, in this thread, when StartExecution returns
        assert seconds >= 1.0 and inline.exec_status == "SUCCEEDED"
        assert threading.active_count() <= threads
    events = session.client("stepfunctions").get_execution_history(executionArn=inline.exec_arn)["events"]
    assert [e["type"] for e in events][-1] == "ExecutionSucceeded"
    # AND the block ends with itself: the next start is asynchronous again
    after, seconds = start_waiting_execution(session, "after")
    assert seconds < 0.5 and after.exec_status == "RUNNING"
    wait_for_execution(session.client("stepfunctions"), execution.exec_arn)
    wait_for_execution(session.client("stepfunctions"), after.exec_arn)
