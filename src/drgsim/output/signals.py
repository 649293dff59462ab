"""SIGTERM behaves like Ctrl-C: the run stops, temporary files are removed, targets untouched."""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (or SIGHUP)."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum: int, frame) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """Make SIGTERM (and SIGHUP) raise :class:`Terminated`, a KeyboardInterrupt, so that every
    ``with`` block unwinds and removes its temporary files exactly as on Ctrl-C.

    Only from the main thread (Python delivers signals there); a no-op elsewhere.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise)
