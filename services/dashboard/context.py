"""What the web routes share: the settings, the window, the feed, the broadcaster and the database (for
spans older than the window and the scores), reached as ``request.app.state.context``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pymongo.database import Database

from services.dashboard.events import Broadcaster
from services.dashboard.feed import Feed
from services.dashboard.window import Window
from shared.settings import Settings

T = TypeVar("T")


class Cached(Generic[T]):
    """A value computed at most once per ``ttl_s``: what several browsers polling the header share."""

    def __init__(self, ttl_s: float, compute: Callable[[], T]) -> None:
        self._ttl_s = ttl_s
        self._compute = compute
        self._value: T | None = None
        self._at = -float("inf")

    def get(self) -> T:
        if self._value is None or time.monotonic() - self._at > self._ttl_s:
            self._value = self._compute()
            self._at = time.monotonic()
        return self._value


@dataclass
class Context:
    settings: Settings
    window: Window
    broadcaster: Broadcaster
    feed: Feed
    db: Database[dict[str, Any]]
    caches: dict[str, Cached[Any]] = field(default_factory=dict)
