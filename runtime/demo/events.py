"""The headless demo's files: EVENTS.csv in (what a scripted user taught), LOG.jsonl out (what it saw).

EVENTS.csv format: a header line `frame,label`, then one `FRAME,LABEL` per line: at source frame FRAME (0-based) the
user taught class LABEL (0-based class index, the numbering of the demo's log). Blank lines and lines
starting with `#` are ignored. Each frame appears at most once. Errors name the file and line.

LOG.jsonl: a header line `{"header": {...}}` (what ran: the source and, for synthetic://, which drawings), then
one JSON object per processed frame, written to a hidden file beside the target and renamed
over it when the run ends (also when it ends in an error, so a long device run keeps its log; an old log
is only replaced by one with at least one record).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import PendingFile
from edgemeta.runtime.file_kind import not_a_file
from edgemeta.runtime.write_error import write_error

HEADER = ("frame", "label")
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)  # what int() accepts besides ("+10", "3_0", "٣") is refused
_SHOWN = 80  # characters of a refused line quoted in the error: a hostile line can be megabytes long


def _quote(line: str) -> str:
    return repr(line) if len(line) <= _SHOWN else f"{line[:_SHOWN]!r}... ({len(line):,} characters)"


def parse_events(text: str, source: str = "events", num_classes: int | None = None) -> dict[int, int]:
    """`frame,label` CSV text -> {frame: label}; labels must be < num_classes when given."""
    events: dict[int, int] = {}
    header_seen = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        where = f"{source}:{lineno}"
        if not header_seen:
            if tuple(c.lower() for c in cells) != HEADER:
                raise EdgemetaError(f"{where}: expected the header 'frame,label', found {_quote(line)}")
            header_seen = True
            continue
        if len(cells) != 2 or not all(_INTEGER.fullmatch(c) for c in cells):
            raise EdgemetaError(f"{where}: expected 'FRAME,LABEL' (two integers, digits 0-9), found {_quote(line)}")
        frame, label = int(cells[0]), int(cells[1])
        if frame < 0:
            raise EdgemetaError(f"{where}: frame {frame} is negative; frames count from 0")
        if label < 0:
            raise EdgemetaError(f"{where}: label {label} is negative; labels count from 0")
        if num_classes is not None and label >= num_classes:
            raise EdgemetaError(
                f"{where}: label {label} is out of range for this model's {num_classes} classes "
                f"(valid: 0-{num_classes - 1})"
            )
        if frame in events:
            raise EdgemetaError(f"{where}: frame {frame} is taught twice; keep one line per frame")
        events[frame] = label
    if not header_seen:
        raise EdgemetaError(f"{source}: empty events file; expected the header 'frame,label' and lines FRAME,LABEL")
    return events


def load_events(path: str | os.PathLike, num_classes: int | None = None) -> dict[int, int]:
    path = Path(path)
    what = not_a_file(path)
    if what is not None:
        raise EdgemetaError(f"events file {path} {what}; write one with the header 'frame,label'")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EdgemetaError(f"cannot read events file {path}: {e}") from None
    return parse_events(text, source=str(path), num_classes=num_classes)


class JsonlLog:
    """Append JSON records to a hidden temporary file; close() publishes it atomically at `path`.

    `header`, if given, is the first line, as {"header": header}; it does not count as a record.
    """

    def __init__(self, path: str | os.PathLike, header: dict | None = None):
        self.path = Path(path)
        self._pending = PendingFile(self.path)
        try:
            self.file = open(self._pending.tmp, "w", encoding="utf-8")
            if header is not None:
                self.file.write(json.dumps({"header": header}, separators=(",", ":")) + "\n")
        except BaseException:
            self._pending.discard()
            raise
        self.records = 0

    def write(self, record: dict) -> None:
        try:
            self.file.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as e:  # a full disk: nothing half-written stays behind, the old log is kept
            self.abort()
            raise write_error("log", self.path, e) from None
        self.records += 1

    def close(self) -> Path | None:
        """Publish the log (None, and the old file kept, when nothing was written)."""
        if self.file.closed:
            return None
        try:
            self.file.close()
            if not self.records:
                self._pending.discard()
                return None
            return self._pending.publish()
        except OSError as e:
            self.abort()
            raise write_error("log", self.path, e) from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the log being written; the old file, if any, stays."""
        try:
            self.file.close()
        except OSError:
            pass  # the buffered tail could not be written either: the file is discarded anyway
        self._pending.discard()


def log_header(source) -> dict:
    """LOG.jsonl's header: the source's URI and, for the synthetic camera, which drawings it shows."""
    header = {"source": getattr(source, "uri", None)}
    drawings = getattr(getattr(source, "backend", None), "data_source", None)
    if drawings:
        header["drawings"] = drawings
    return header


def read_log(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """LOG.jsonl -> (header, one record per processed frame); the header is {} in a log without one."""
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    if lines and set(lines[0]) == {"header"}:
        return lines[0]["header"], lines[1:]
    return {}, lines
