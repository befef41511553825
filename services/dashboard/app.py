"""``portfolio dashboard``: fill the window from the database once, consume bars and forecasts, serve the
page and the read API until SIGTERM/SIGINT.

uvicorn runs in a thread of its own: the stop flag that every service installs keeps the signals, and on
stop the server is asked to finish its open responses (the event streams end) before the process exits.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn

from services.dashboard.context import Context
from services.dashboard.events import Broadcaster
from services.dashboard.feed import Feed
from services.dashboard.stored_reads import fill
from services.dashboard.web import build_app
from services.dashboard.window import Window
from shared.kafka import ensure_topics
from shared.lifecycle import StopFlag
from shared.mongo import database, make_client
from shared.settings import Settings

logger = logging.getLogger("dashboard")

# Open event streams are cut after this on stop: a browser reconnects by itself.
SHUTDOWN_GRACE_S = 3


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts, so port 0 is known (and logged) at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def run(settings: Settings, stop: StopFlag) -> None:
    window = Window(settings.trainer.history)
    broadcaster = Broadcaster()
    ensure_topics(settings, [settings.kafka.bars_topic, settings.kafka.predictions_topic])
    with make_client(settings) as client:
        db = database(client, settings)
        # Before the feed starts: a bar from the stream then always replaces the stored one of its minute.
        fill(db, window)
        feed = Feed(settings, window, broadcaster, stop)
        feed.start()
        app = build_app(Context(settings, window, broadcaster, feed, db))
        sock = listen(settings.dashboard.host, settings.dashboard.port)
        config = uvicorn.Config(
            app, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard-http")
        thread.start()
        logger.info("dashboard on %s", url_of(sock))
        try:
            while not stop.wait(1.0):
                if not thread.is_alive():
                    raise RuntimeError("the web server stopped")
        finally:
            server.should_exit = True
            thread.join(SHUTDOWN_GRACE_S + 5)
            feed.join(10)
            sock.close()
    logger.info("dashboard stopped")
