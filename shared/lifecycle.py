"""Process lifecycle: SIGINT/SIGTERM become a stop flag that the service loops check."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

logger = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGINT or SIGTERM (or by :meth:`set`); loops check it and finish what they owe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._exit_after_s: float | None = None

    def install(self, exit_after_s: float | None = None) -> StopFlag:
        """Route SIGINT and SIGTERM here (main thread only). A second signal still only asks to stop.

        With ``exit_after_s``, a process that has not returned that long after the first signal (a call
        stuck in a database or broker client) exits with code 1: what it held stays uncommitted and is
        read again by the next run, which is safe; hanging on is not.
        """
        self._exit_after_s = exit_after_s
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._event.is_set():
            logger.info("received %s: stopping after the work in hand", signal.Signals(signum).name)
            if self._exit_after_s is not None:
                threading.Thread(target=self._exit_later, name="stop-deadline", daemon=True).start()
        self._event.set()

    def _exit_later(self) -> None:
        assert self._exit_after_s is not None
        threading.Event().wait(self._exit_after_s)
        # No logging here: a handler lock may be held by the stuck thread.
        sys.stderr.write(f"did not stop within {self._exit_after_s:.0f} s; exiting with work uncommitted\n")
        sys.stderr.flush()
        os._exit(1)

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when asked to stop; return whether to stop."""
        return self._event.wait(timeout)
