"""Logging set-up: one readable line per event, to stderr and to ``PORTFOLIO_LOG_FILE``."""

from __future__ import annotations

import logging
import sys
import time

from shared.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s"


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def setup_logging(settings: Settings, service: str) -> None:
    """Configure the root logger once per process; log the (redacted) settings at start."""
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.common.log_file:
        settings.common.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.common.log_file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_ServiceFilter(service))
        root.addHandler(handler)
    root.setLevel(settings.common.log_level)
    for noisy in ("pymongo", "yfinance", "urllib3", "peewee", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger(__name__).info("settings %s", settings.redacted())
