"""One line for a file that could not be written: a full disk is named as such, with the folder it is in."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from edgemeta import EdgemetaError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_is_full(folder: str | os.PathLike) -> bool:
    """Whether the file system holding `folder` has no space left for this user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail == 0


def write_error(what: str, path: str | os.PathLike, e: OSError | None = None) -> EdgemetaError:
    """'cannot write <what> <path>: <why>; the previous file was kept'; `e` None means the disk filled up
    under a writer that reports no error of its own (OpenCV's video writer)."""
    path = Path(path)
    if e is None or e.errno in _FULL:
        why = f"the disk holding {path.parent} is full (no space left on device); free some space or write elsewhere"
    else:
        why = e.strerror or str(e)
    return EdgemetaError(f"cannot write {what} {path}: {why}; the previous file was kept")
