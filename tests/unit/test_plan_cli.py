"""`fanflow plan` on the command line: every option checked by the parser (exit 2, a
message naming the option and its range), the JSON it prints, and --plot's check for
matplotlib before anything is simulated."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from fanflow.commands import plan as plan_command


@pytest.mark.parametrize(("args", "message"), [
    (["--cases", "0", "--compute-seconds", "5"], "argument --cases: must be between 1 and 10,000,000, got 0"),
    (["--cases", "ten", "--compute-seconds", "5"], "argument --cases: expected a whole number, got 'ten'"),
    (["--cases", "10", "--compute-seconds", "-1"], "argument --compute-seconds: must be between 0.0 and 900.0"),
    (["--cases", "10", "--compute-seconds", "inf"], "argument --compute-seconds: must be between 0.0 and 900.0"),
    (["--cases", "10", "--compute-seconds", "nan"], "argument --compute-seconds: must be between 0.0 and 900.0"),
    (["--cases", "10", "--compute-seconds", "5", "--lambda-concurrency", "0"],
     "argument --lambda-concurrency: must be between 1 and 1,000,000, got 0"),
    (["--cases", "10", "--compute-seconds", "5", "--region", "moon"], "argument --region: expected an AWS Region"),
    (["--cases", "10", "--compute-seconds", "5", "--fan-out-concurrency", "0"],
     "argument --fan-out-concurrency: must be between 1 and 1,000, got 0"),
    (["--cases", "10", "--compute-seconds", "5", "--compute-reserved", "-1"],
     "argument --compute-reserved: must be between 0 and 1,000,000, got -1"),
    (["--cases", "10", "--compute-seconds", "5", "--variant", "other"], "argument --variant: invalid choice"),
    (["--compute-seconds", "5"], "the following arguments are required: --cases"),
])
def test_out_of_range_options_exit_2_naming_the_option(args: list[str], message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *args]) == 2
    assert message in capsys.readouterr().err


def test_reservations_must_leave_100_unreserved(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN each of the 3 compute functions reserving 300, and the 6 orchestration floors of 10: 960
    code = main(["plan", "--cases", "10", "--compute-seconds", "5", "--lambda-concurrency", "1000",
                 "--compute-reserved", "300"])
    # THEN the command says what would fit: (1,000 - 100 - 60) / 3
    assert code == 2
    err = capsys.readouterr().err
    assert "must leave 100 of the account's 1,000 unreserved" in err
    assert "--compute-reserved at most 280 (3 compute functions each reserve it)" in err


def test_deployed_reservations_need_an_account_that_holds_them(capsys: pytest.CaptureFixture[str]) -> None:
    # The deployed 660 (3 x 200 + 6 x 10) do not fit in 500; with Compute unreserved, the 60 floors do.
    assert main(["plan", "--cases", "10", "--compute-seconds", "1", "--lambda-concurrency", "500",
                 "--variant", "fanflow"]) == 2
    assert "660 in all" in capsys.readouterr().err
    assert main(["plan", "--cases", "10", "--compute-seconds", "1", "--lambda-concurrency", "500",
                 "--variant", "fanflow", "--compute-reserved", "0", "--json"]) == 0
    variant = json.loads(capsys.readouterr().out)["variants"][0]
    assert "Compute" not in variant["reservedConcurrency"] and variant["completes"]


def test_json_output_has_each_variant_phases_limits_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--cases", "200", "--compute-seconds", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"cases", "computeSeconds", "region", "lambdaConcurrency", "variants", "planningSeconds"} <= set(out)
    assert [variant["variant"] for variant in out["variants"]] == ["fanflow", "seed"]
    for variant in out["variants"]:
        assert set(variant["phases"]) == {"fanOutDone", "lastComputed", "lastCounted", "summaryWritten"}
        for phase in variant["phases"].values():
            assert phase["atSeconds"] is not None
            assert phase["binding"] is None or {"limit", "figure", "source"} <= set(phase["binding"])
        assert set(variant["cost"]["usd"]) == {"stepFunctions", "lambdaRequests", "lambdaGbSeconds", "eventBridge",
                                               "dynamoDbWrites", "dynamoDbReads", "sqs", "s3"}
        assert variant["wallSeconds"] == variant["phases"]["summaryWritten"]["atSeconds"]
        assert {"historyLimit", "historyEvents", "reservedConcurrency", "casesDropped", "casesNotEmitted"} <= set(
            variant)


def test_one_variant_and_its_sensitivity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--cases", "50", "--compute-seconds", "1", "--variant", "seed", "--sensitivity",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [variant["variant"] for variant in out["variants"]] == ["seed"]
    rows = out["sensitivity"]["seed"]
    assert {row["assumption"] for row in rows} >= {"eb.delivery", "lambda.cold.start", "lambdaConcurrency"}
    assert all(set(row["wallChangePercent"]) == {"x0.5", "x2"} for row in rows)


def test_table_output_names_the_phases_and_the_planning_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--cases", "100", "--compute-seconds", "1"]) == 0
    out = capsys.readouterr().out
    for text in ("fan-out done", "last computation done", "last case counted", "summary written", "planned in",
                 "PreProcess history: 22 events", "reserved concurrency: Compute 200"):
        assert text in out


def test_plot_without_matplotlib_fails_before_simulating(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("simulated although --plot cannot be drawn")

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    monkeypatch.setattr(plan_command, "plan", must_not_run)
    with pytest.raises(SystemExit, match="needs matplotlib"):
        main(["plan", "--cases", "10", "--compute-seconds", "1", "--plot", str(tmp_path / "plan.png")])


def test_plot_draws_both_variants(tmp_path: Path) -> None:
    path = tmp_path / "plan.png"
    assert main(["plan", "--cases", "100", "--compute-seconds", "1", "--plot", str(path)]) == 0
    assert path.stat().st_size > 10_000
