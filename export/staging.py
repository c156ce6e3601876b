"""Write an export directory as a whole: everything is built and checked in a hidden folder beside
DIR and replaces DIR with renames only after every check passed.

A failure (or Ctrl-C) removes the hidden folder and leaves DIR as it was; a finished export never
mixes files of two exports. Only a directory that is new, empty or a previous export is replaced,
so a mistyped --out cannot wipe someone's folder, and in a previous export only the export's own files
(those its export.json lists) are replaced: a state file or recordings kept beside them stay.

The swap renames DIR aside (to a hidden `.old`), the new export into place, then moves the other files
back in. A process that dies in between leaves the `.old` folder, and the next export into DIR finishes
that swap first (or renames `.old` back when DIR is missing), so nothing is lost.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.atomic import default_dir_mode, default_file_mode, fsync_dir


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden directory; on success it becomes `target` (replacing a previous export)."""
    target = Path(target)
    _recover(target)
    _check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise EdgemetaError(f"cannot write to {target}: {e.strerror or e}; pass a writable --out directory") from None
    try:
        yield tmp
        for f in tmp.iterdir():
            os.chmod(f, default_file_mode())  # temp files are created private; exports are for sharing
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _swap_in(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EdgemetaError(f"cannot write to {target}: {e.strerror or e}; the previous contents were kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_replaceable(target: Path) -> None:
    for ancestor in target.parents:  # the nearest existing folder above DIR must be one
        if ancestor.exists():
            if not ancestor.is_dir():
                raise EdgemetaError(f"cannot write to {target}: {ancestor} is a file, not a directory; pass another --out")
            break
    if target.exists() and not target.is_dir():
        raise EdgemetaError(f"--out {target} exists and is not a directory; pass a directory")
    if target.is_dir():
        try:
            entries = {p.name for p in target.iterdir()}
        except OSError as e:
            raise EdgemetaError(f"cannot read --out {target}: {e.strerror or e}") from None
        if entries and contract.EXPORT_REPORT_FILE not in entries:
            raise EdgemetaError(
                f"--out {target} holds other files and no {contract.EXPORT_REPORT_FILE}; pass a new or empty "
                "directory (a previous export is replaced as a whole)"
            )


def _own_files(export_dir: Path) -> set[str]:
    """The names a previous export wrote: those its export.json lists, and export.json."""
    try:
        files = json.loads((export_dir / contract.EXPORT_REPORT_FILE).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        files = {}
    return {contract.EXPORT_REPORT_FILE, *(name for name in files if isinstance(name, str))}


def _move_others(old: Path, target: Path) -> None:
    """Move what `old` holds besides its export into `target` (never over a file of the new export)."""
    own = _own_files(old)
    for entry in old.iterdir():
        if entry.name not in own and not (target / entry.name).exists():
            os.rename(entry, target / entry.name)


def _recover(target: Path) -> None:
    """Finish a swap a dead process left half done: its `.old` folder goes back into place."""
    if not target.parent.is_dir():
        return
    for old in sorted(target.parent.glob(f".{target.name}.*.old")):
        try:
            if not target.exists():
                os.rename(old, target)
                continue
            _move_others(old, target)
            shutil.rmtree(old)
        except OSError as e:
            raise EdgemetaError(f"cannot finish the earlier export into {target} (its previous contents are in {old}): "
                                f"{e.strerror or e}") from None


def _swap_in(tmp: Path, target: Path) -> None:
    mode = target.stat().st_mode if target.is_dir() else default_dir_mode()
    os.chmod(tmp, mode & 0o7777)  # mkdtemp made it private; it becomes the user's directory
    if target.is_dir():
        clash = [e.name for e in target.iterdir() if e.name not in _own_files(target) and (tmp / e.name).exists()]
        if clash:
            raise EdgemetaError(f"--out {target} holds {', '.join(clash)}, which the export writes too; move it away first")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rmdir(old)  # only the unique name is wanted
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            os.rename(old, target)
            raise
        fsync_dir(target.parent)
        _move_others(old, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)
    fsync_dir(target.parent)
