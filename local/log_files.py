"""The embedded target's log files: appended to by every emulator (an in-process run, a
`fanflow up` endpoint, `bench`, the tests), and rotated by size when one starts, so that
starting an emulator never erases another's logs."""

from __future__ import annotations

from pathlib import Path

MAX_BYTES = 20 * 1024 * 1024
BACKUPS = 3  # lambda.log.1 (the newest) to lambda.log.3


def rotate(path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Make sure `path` can be appended to: its directory exists and, when the file has
    reached `max_bytes`, it becomes `path.1` (older ones shift up; the oldest is dropped).
    A process still writing to the old file keeps writing there, undisturbed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size < max_bytes:
            return
    except FileNotFoundError:
        return
    for number in range(backups, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        newer = path.with_name(f"{path.name}.{number - 1}") if number > 1 else path
        if newer.exists():
            newer.replace(older)
