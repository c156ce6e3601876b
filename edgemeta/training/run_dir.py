"""A run directory (`edgemeta train --out`): one training at a time, never overwritten by accident.

The lock is an flock on the directory itself, held while a run trains: the kernel drops it when the
process dies, however it dies, so a stale lock never needs cleaning up. A directory that holds a run is
only continued (`--resume`) or explicitly started over (`--overwrite`), and a resumed run's
metrics.jsonl keeps only the rows up to the checkpoint it resumes from, so no step is logged twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_write_text
from edgemeta.training.checkpoint import BEST, LAST, PRETRAIN

METRICS = "metrics.jsonl"
RUN_FILES = (LAST, BEST, PRETRAIN, METRICS)


class RunLock:
    """An exclusive, non-blocking lock on a run directory, released by release() or the process's end."""

    def __init__(self, out: Path):
        import fcntl

        self.fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise EdgemetaError(f"{out} is being trained by another process; wait for it to finish, or use another "
                                "--out") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def run_files(out: Path) -> list[str]:
    return [name for name in RUN_FILES if (out / name).exists()]


def refuse_or_clear(out: Path, resume: bool, overwrite: bool) -> None:
    """An existing run in `out` is continued with resume, removed with overwrite, refused otherwise."""
    found = run_files(out)
    if not found or resume:
        return
    if not overwrite:
        raise EdgemetaError(f"{out} already holds a run ({', '.join(found)}); continue it with --resume, start it "
                            "over with --overwrite, or use another --out")
    for name in found:
        (out / name).unlink()


def truncate_metrics(out: Path, step: int) -> None:
    """Keep the metrics rows of steps up to `step` (the checkpoint resumed from): the steps after it are trained
    again and logged again."""
    path = out / METRICS
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the crash being resumed from
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
