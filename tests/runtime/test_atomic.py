"""The one atomic-write helper: the old file or the new one, never half, never a leftover temporary file."""
from __future__ import annotations

import errno
import os

import pytest

from edgemeta.runtime.atomic import PendingFile, atomic_path, atomic_write_text, default_dir_mode, default_file_mode


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_pending_file_publishes_on_publish_and_vanishes_on_discard(tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_text("old")
    pending = PendingFile(target)
    pending.tmp.write_text("new")
    assert pending.tmp.parent == tmp_path and pending.tmp.name.startswith(".log.jsonl.")
    assert target.read_text() == "old"  # untouched until published
    assert pending.publish() == target and target.read_text() == "new"
    discarded = PendingFile(target, suffix=".mp4")
    assert discarded.tmp.suffix == ".mp4"  # writers that pick a format by extension see the target's
    discarded.tmp.write_text("half")
    discarded.discard()
    assert target.read_text() == "new" and _entries(tmp_path) == ["log.jsonl"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def refuse(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="Read-only"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and _entries(tmp_path) == ["a.txt"]


def test_an_exception_in_the_writer_publishes_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "x" / "b.npz", suffix=".npz") as tmp:
            assert tmp.name.endswith(".npz.tmp")
            tmp.write_bytes(b"half")
            raise ValueError("writer failed")
    assert _entries(tmp_path / "x") == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_published_files_get_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert (default_file_mode(), default_dir_mode()) == (0o666 & ~umask, 0o777 & ~umask)
        atomic_write_text(tmp_path / "c.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o666 & ~umask
