"""Process lifecycle: SIGINT/SIGTERM become a stop flag that the service loops check."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGINT or SIGTERM (or by :meth:`set`); loops check it and finish what they owe."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopFlag:
        """Route SIGINT and SIGTERM here (main thread only). A second signal still only asks to stop."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._event.is_set():
            logger.info("received %s: stopping after the work in hand", signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when asked to stop; return whether to stop."""
        return self._event.wait(timeout)
