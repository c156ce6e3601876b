"""How a long command is stopped: Ctrl-C (SIGINT), `kill` / `docker stop` / systemd (SIGTERM) and a closed
terminal (SIGHUP) all end it the same way, as a KeyboardInterrupt its loops catch to save what they have.

The handlers are installed explicitly, even over an inherited "ignore": a command started in the
background of a shell script inherits an ignored SIGINT, and would otherwise have no clean way to stop.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, every stop signal raises KeyboardInterrupt in the main thread; the previous handlers
    come back after it. Off the main thread (where Python delivers no signals) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
