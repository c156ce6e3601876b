"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file edgemeta publishes goes through here: a hidden temporary file beside the target, fsynced and
renamed over it on success, removed on failure. `PendingFile` is the primitive for writers that stream
over a whole run (a video, a log); `atomic_path` and the `atomic_write_*` functions wrap it for writes
that happen in one go.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def default_file_mode() -> int:
    """The mode open() gives a new file under the current umask (temporary files are made private)."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """The mode mkdir() gives a new directory under the current umask."""
    return 0o777 & ~_umask()


class PendingFile:
    """A hidden temporary file beside `path` (at `.tmp`) that becomes `path` on publish() and vanishes on
    discard(). The target is untouched until publish(), so a failed or interrupted writer keeps the old file.

    `suffix` ends the temporary name: keep the target's extension for writers that pick a format from it
    (OpenCV's video writer, numpy's savez).
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp_name)
        try:
            os.chmod(self.tmp, default_file_mode())  # published files get the usual mode, not mkstemp's 0600
        except BaseException:
            self.discard()
            raise

    def publish(self) -> Path:
        """fsync the temporary file and rename it over the target (the old file stays if this fails)."""
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is published at `path`, on any exception removed.

    `suffix` keeps an extension some writers insist on (numpy adds ".npz" otherwise).
    """
    pending = PendingFile(path, suffix=suffix + ".tmp")
    try:
        yield pending.tmp
    except BaseException:
        pending.discard()
        raise
    pending.publish()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call `writer(tmp_path)` and publish the result atomically at `path`."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make renames inside `directory` durable: without it a power cut can resurrect the old name."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
