"""``/healthz``, ``/api/health`` (each service's /healthz and lag, and the dashboard's own), ``/api/scores``
(the one scorer's table) and ``/api/stream`` (server-sent events of new bars and forecasts).

Health and scores are computed at most every few seconds whatever the number of browsers polling them,
in a worker thread: probes wait on sockets, the scores read the metrics collection.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.dashboard.api_data import JSON, context_of
from services.dashboard.context import Cached, Context
from services.dashboard.models import HealthOut, ScoresOut
from services.pipeline.view import probe
from services.scoring.tables import COLUMNS, NOTE, cell, rows_from_metrics

HEALTH_TTL_S = 2.0
SCORES_TTL_S = 30.0


def _service_health(context: Context) -> dict[str, Any]:
    settings = context.settings
    ports = {
        "producer": settings.producer.http_port,
        "sink": settings.sink.http_port,
        "trainer": settings.trainer.http_port,
    }
    services: dict[str, Any] = {}
    for name, port in ports.items():
        if port == 0:
            # The service chose its port at start (logged there); there is nothing to ask here.
            services[name] = {"ready": None, "lag": None, "url": None}
            continue
        host = settings.dashboard.service_hosts.get(name, "127.0.0.1")
        ready, lag = probe(port, host)
        services[name] = {"ready": ready, "lag": lag, "url": f"http://{host}:{port}/healthz"}
    return services


def health_body(context: Context) -> HealthOut:
    cache = context.caches.setdefault("health", Cached(HEALTH_TTL_S, lambda: _service_health(context)))
    counts = context.window.counts()
    newest = max((ts for _, ts in context.window.tickers() if ts is not None), default=None)
    return HealthOut.model_validate(
        {
            "services": cache.get(),
            "dashboard": {
                "ready": context.feed.connected,
                "lag": context.feed.lag,
                "tickers": counts["tickers"],
                "bars": counts["bars"],
                "predictions": counts["predictions"],
                "clients": context.broadcaster.clients,
                "newest_ts": newest,
            },
        }
    )


async def health(request: Request) -> Response:
    body = await run_in_threadpool(health_body, context_of(request))
    return Response(body.model_dump_json(), media_type=JSON)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    # numpy scalars and timestamps from the scorer's frames
    return _json_safe(value.item()) if hasattr(value, "item") else str(value)


def scores_body(context: Context) -> ScoresOut:
    def compute() -> tuple[list[dict[str, Any]], list[list[str]]]:
        rows = rows_from_metrics(context.db, "walk_forward", None)
        values = [{key: _json_safe(row.get(key)) for key, _, _ in COLUMNS} for row in rows]
        return values, [[cell(row, key, fmt) for key, _, fmt in COLUMNS] for row in rows]

    cache = context.caches.setdefault("scores", Cached(SCORES_TTL_S, compute))
    rows, text = cache.get()
    columns = [{"key": key, "title": title} for key, title, _ in COLUMNS]
    return ScoresOut.model_validate({"columns": columns, "rows": rows, "text": text, "note": NOTE})


async def scores(request: Request) -> Response:
    body = await run_in_threadpool(scores_body, context_of(request))
    return Response(body.model_dump_json(), media_type=JSON)


async def healthz(request: Request) -> Response:
    """The same /healthz as every service (``shared.ops``): 200 once the feed holds its partitions, else 503;
    what ``portfolio run``'s view and the compose healthcheck ask."""
    context = context_of(request)
    ready = context.feed.connected
    body = {"ready": ready, "checks": {"kafka": ready}, "lag": context.feed.lag}
    return JSONResponse(body, status_code=200 if ready else 503)


async def stream(request: Request) -> Response:
    return StreamingResponse(
        context_of(request).broadcaster.stream(),
        media_type="text/event-stream",
        # No proxy buffering or caching: an event must reach the browser when it happens.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


ROUTES = [
    Route("/api/health", health),
    Route("/api/scores", scores),
    Route("/api/stream", stream),
    Route("/healthz", healthz),
]
