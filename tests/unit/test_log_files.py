"""The embedded target's logs are appended to and rotated by size, never emptied by a start;
and the suite keeps its logs out of the developer's cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local.assembly import cache_root
from local.log_files import rotate
from local.runtime import EmbeddedEmulator


def test_a_small_log_is_kept_and_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "lambda.log"
    rotate(log)  # no directory yet: made
    log.write_text("earlier run\n")
    rotate(log, max_bytes=1000)
    assert log.read_text() == "earlier run\n"
    assert not log.with_name("lambda.log.1").exists()


def test_a_full_log_is_rotated_and_the_oldest_dropped(tmp_path: Path) -> None:
    # GIVEN a full log and three older ones
    log = tmp_path / "lambda.log"
    for name, text in (("lambda.log", "newest"), ("lambda.log.1", "older"), ("lambda.log.2", "old"),
                       ("lambda.log.3", "oldest")):
        (tmp_path / name).write_text(text)
    # WHEN it is rotated  THEN each moves up one, the oldest is gone, and the log starts afresh
    rotate(log, max_bytes=5, backups=3)
    assert not log.exists()
    assert [(tmp_path / f"lambda.log.{n}").read_text() for n in (1, 2, 3)] == ["newest", "older", "old"]


def test_starting_an_emulator_keeps_what_others_logged() -> None:
    # GIVEN a log written by an earlier run (or a running endpoint)
    log = cache_root() / "logs" / "lambda.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('{"message": "from another emulator"}\n')
    # WHEN an emulator is made (as `fanflow list`, `bench` or a run make one)  THEN the log is intact
    emulator = EmbeddedEmulator()
    assert emulator.log_file == log
    assert "from another emulator" in log.read_text()


def test_the_suite_uses_a_cache_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    # THEN logs (and any synthesis) go under pytest's temporary directory, never ~/.cache/fanflow
    assert cache_root() == Path(os.environ["FANFLOW_CACHE_DIR"])
    assert tmp_path_factory.getbasetemp() in cache_root().parents
