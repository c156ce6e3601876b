"""What a path that should name a regular file really is, in words for a one-line error.

"does not exist" is only true of a missing path: a directory, or a device such as /dev/zero (which would
be read forever), is named as what it is.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


def not_a_file(path: str | os.PathLike) -> str | None:
    """None for a regular file (links followed); else what the path is: 'does not exist', 'is a directory', ..."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is a file, not a directory)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a pipe, not a regular file"
    return "is not a regular file"
