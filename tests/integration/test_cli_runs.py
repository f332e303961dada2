"""`fanflow run` in-process, through its JSON output: a file's requestId replaced by the
caller's business key, honest timings, and fault runs that repeat with their seed and close
at their deadline, not before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from lambda_fns import constants as c

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data_sets"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["run", *args, "--json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out), captured.err


def test_request_id_replaces_the_file_s_and_may_be_any_text(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a seed sample (requestId 123456) run under a business key that is not an execution name
    key = "order 42/2026 #a: ünïcode, and long " + "x" * 90
    code, result, err = run_json(capsys, str(SAMPLES / "dataset_5.json"), "--request-id", key)
    # THEN the request ran under that key, and shows it
    assert code == 0
    assert result["requestId"] == result["counterRow"][c.ATTR_REQUEST_ID] == key
    assert result["succeeded"] == 5
    # AND said what it did: in-process, as no endpoint runs
    assert "starting the embedded target in this process" in err
    # AND its wall time, from createdAt (with milliseconds) to completedAt, is within what the client measured
    assert result["createdAt"] != int(result["createdAt"]) or result["completedAt"] != int(result["completedAt"])
    assert 0 < result["wallSeconds"] <= result["clientWallSeconds"]


FAULTS = ("--cases", "40", "--seed", "7", "--duplicate-rate", "0.5", "--failure-rate", "0.3", "--drop-rate", "0.1",
          "--deadline", "4")


def test_the_same_seed_repeats_a_fault_run_and_the_deadline_closes_it_on_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the same generated request run twice with the same seed (each gets its own requestId)
    runs = [run_json(capsys, *FAULTS)[1] for _ in range(2)]
    first, second = runs
    assert first["requestId"] != second["requestId"]
    # THEN the same faults were injected, and the same cases never completed
    assert first["injectedFaults"] == second["injectedFaults"]
    assert first["injectedFaults"]["droppedCompletions"], "the seed drops some completions"
    assert first["timedOut"] == second["timedOut"] == first["injectedFaults"]["droppedCompletions"]
    for result in runs:
        # AND each was closed by its deadline: at it, not before it
        row = result["counterRow"]
        assert result["status"] == c.STATUS_TIMED_OUT
        assert row[c.ATTR_DEADLINE] <= row[c.ATTR_COMPLETED_AT] < row[c.ATTR_DEADLINE] + 1.5
        assert row[c.ATTR_DEADLINE] - row[c.ATTR_CREATED_AT] >= 4


def test_a_deadline_the_stack_refuses_is_an_invalid_request_with_prepare_s_reason(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a deadline within a year (the client's bound) but beyond the stack's retention less
    # the close margin (7 days less 3 hours: 594,000 s)
    bound = c.max_deadline_seconds(c.DEFAULT_RETENTION_DAYS * 86_400)
    # WHEN it runs  THEN Prepare refuses it, and the run says why as an invalid request: exit 2,
    # one line, no Lambda error record or stack trace
    code = main(["run", "--cases", "1", "--deadline", str(bound + 1)])
    err = capsys.readouterr().err
    assert code == 2
    assert (f"fanflow: invalid request: PreProcess refused it: deadlineSeconds must be a number of seconds "
            f"between 1 and {bound}") in err
    assert "stackTrace" not in err and "errorMessage" not in err
