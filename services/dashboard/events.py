"""New bars and forecasts, from the feed's thread to every connected browser (server-sent events).

Each poll's events are encoded once, as one SSE message, and handed to every client's queue on the web
server's loop. A client that falls behind by :data:`CLIENT_BACKLOG` messages is dropped rather than held
in memory: its browser's EventSource reconnects and the page reads the API again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from shared.schemas import BarV1, PredictionV1, format_ts

logger = logging.getLogger(__name__)

CLIENT_BACKLOG = 1_000
# Proxies and browsers close a connection that says nothing for a minute or two.
KEEPALIVE_S = 15.0


def bar_event(bar: BarV1) -> dict[str, Any]:
    return {
        "kind": "bar",
        "ticker": bar.ticker,
        "ts": format_ts(bar.ts),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "final": bar.final,
    }


def prediction_event(prediction: PredictionV1) -> dict[str, Any]:
    return {
        "kind": "prediction",
        "ticker": prediction.ticker,
        "ts": format_ts(prediction.ts),
        "based_on_ts": format_ts(prediction.based_on_ts),
        "horizon_min": prediction.horizon_min,
        "yhat": prediction.yhat,
        "q10": prediction.q10,
        "q90": prediction.q90,
        "model_version": prediction.model_version,
    }


def sse_message(events: list[dict[str, Any]]) -> bytes:
    return f"event: batch\ndata: {json.dumps({'events': events}, separators=(',', ':'))}\n\n".encode()


class Broadcaster:
    """Fan-out of encoded SSE messages to the clients connected now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, events: list[dict[str, Any]]) -> None:
        """From any thread: send ``events`` to every client (nothing when none is connected)."""
        with self._lock:
            loop, idle = self._loop, not self._clients
        if not events or idle or loop is None or loop.is_closed():
            return
        message = sse_message(events)
        loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for queue in clients:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning("an event-stream client fell %d messages behind: dropped", CLIENT_BACKLOG)
                self._forget(queue)
                # The client's generator ends when it reads this; the queue has room once it drains one.
                queue.get_nowait()
                queue.put_nowait(None)

    def _forget(self, queue: asyncio.Queue[bytes | None]) -> None:
        with self._lock:
            self._clients.discard(queue)

    async def stream(self) -> AsyncIterator[bytes]:
        """One client's messages until it disconnects or is dropped, with a comment as keep-alive."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_BACKLOG)
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._clients.add(queue)
        try:
            # Sent at once, so the client knows it is connected (and the bench can start its clock).
            yield b": connected\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            self._forget(queue)
