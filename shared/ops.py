"""What operators read: ``/healthz`` and Prometheus ``/metrics``, served from a background thread.

Each service owns a :class:`prometheus_client.CollectorRegistry` (so several services can run in one test
process) and a :class:`Health` whose checks it updates from its loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


class Health:
    """Named readiness checks. Ready only when every check is true (and at least one exists)."""

    def __init__(self, *checks: str) -> None:
        self._lock = threading.Lock()
        self._checks = dict.fromkeys(checks, False)
        self._since = time.time()

    def set(self, check: str, ok: bool) -> None:
        with self._lock:
            self._checks[check] = ok

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            checks = dict(self._checks)
        return {
            "ready": bool(checks) and all(checks.values()),
            "checks": checks,
            "uptime_s": round(time.time() - self._since, 1),
        }


class OpsServer:
    """``GET /healthz`` (200 when ready, else 503, JSON body) and ``GET /metrics`` (Prometheus text)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        registry_, health_ = registry, health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    snapshot = health_.snapshot()
                    self._reply(
                        200 if snapshot["ready"] else 503, "application/json", json.dumps(snapshot).encode()
                    )
                elif path == "/metrics":
                    self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry_))
                else:
                    self._reply(404, "text/plain", b"not found: try /healthz or /metrics\n")

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class names it)
                return  # scrapes every few seconds would drown the service's own log lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Self:
        self._thread.start()
        logger.info(
            "serving /healthz and /metrics on http://%s:%d", self._server.server_address[0], self.port
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
