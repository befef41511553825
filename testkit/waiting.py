"""The one wait loop: poll a condition until it holds, a deadline passes or a watched process exits."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll_until(
    condition: Callable[[], T],
    timeout: float,
    every: float = 0.3,
    process: subprocess.Popen[Any] | None = None,
    what: str = "a condition",
) -> T | None:
    """The condition's first truthy result, or None once ``timeout`` seconds passed; checked every
    ``every`` seconds. With ``process``, fails at once if that process exits while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None:
            assert process.poll() is None, (
                f"{process.args!r} exited early ({process.returncode}) while waiting for {what}"
            )
        if time.monotonic() > deadline:
            return None
        time.sleep(every)


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    every: float = 0.3,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Like ``poll_until``, but a timeout fails the test, naming ``what`` was waited for."""
    result = poll_until(condition, timeout, every, process, what)
    if not result:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return result
