"""Start the services as child processes and stop them in an order that loses nothing.

Children run in their own sessions so a Ctrl-C in the terminal reaches only the supervisor, which then
stops them one by one: the dashboard first (it only reads), the producer (nothing new enters), then the
trainer (its last predictions are flushed to Kafka), then the sink (it writes and commits everything,
predictions included).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

START_ORDER = ("sink", "trainer", "dashboard", "producer")
STOP_ORDER = ("dashboard", "producer", "trainer", "sink")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: if the supervisor is killed outright (kill -9), the kernel sends SIGTERM to each child,
    # so no service outlives it as an orphan.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()


def start(name: str, env: dict[str, str], log_dir: Path) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module; no user input)
            [sys.executable, "-m", "shared.cli", name],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Safe here: the supervisor starts its children before any thread of its own.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
    logger.info("started %s (pid %d), log %s", name, process.pid, log_path)
    return Child(name, process, log_path)


def stop(child: Child, timeout: float) -> int:
    """SIGTERM, wait for the service to flush and commit, SIGKILL only past ``timeout``."""
    if child.exit_code is None:
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.error(  # noqa: TRY400 (a timeout, not a failure: no traceback wanted)
                "%s did not stop within %.0f s; killing it", child.name, timeout
            )
            child.process.kill()
            child.process.wait()
    return int(child.process.returncode)


def stop_all(children: dict[str, Child], timeout: float = 60.0) -> dict[str, int]:
    codes = {}
    for name in STOP_ORDER:
        if name in children:
            started = time.monotonic()
            codes[name] = stop(children[name], timeout)
            logger.info(
                "%s stopped with exit code %d in %.1f s", name, codes[name], time.monotonic() - started
            )
    return codes


def last_line(path: Path, limit: int = 160) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 4096))
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""
