"""The ASGI application: the page, its static files (from this package: the page works offline), the read
API, and errors as JSON.

Starlette (with uvicorn) was chosen over FastAPI: the contract is already pydantic models (``models.py``),
the API is seven GET routes and a stream, and Starlette brings no dependency beyond anyio; FastAPI's
request-model injection and OpenAPI generation would be unused weight here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.dashboard import api_data, api_status
from services.dashboard.context import Context
from services.dashboard.models import ErrorOut
from services.dashboard.queries import QueryError

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def _error(status: int, detail: str) -> Response:
    body = ErrorOut(error=_ERRORS.get(status, "error"), detail=detail).model_dump_json()
    return Response(body, status_code=status, media_type="application/json")


async def _query_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueryError)
    return _error(exc.status, exc.detail)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's own details ("Not Found") never carry the request's input.
    return _error(exc.status_code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error (logged)")


async def page(_request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def build_app(context: Context) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", page),
            *api_data.ROUTES,
            *api_status.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={QueryError: _query_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.context = context
    return app
