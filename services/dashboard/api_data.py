"""``/api/tickers``, ``/api/bars``, ``/api/predictions``, ``/api/portfolio``: answered from the window in
memory; only a span that starts before the window goes to the database (in a worker thread)."""

from __future__ import annotations

from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.dashboard import queries
from services.dashboard.context import Context
from services.dashboard.models import (
    BarOut,
    BarsOut,
    PortfolioOut,
    PredictionOut,
    PredictionsOut,
    TickerOut,
)
from services.dashboard.queries import END_OF_TIME, QueryError
from services.dashboard.stored_reads import read_bars, read_predictions
from shared.settings import PORTFOLIO_SERIES

JSON = "application/json"
_TICKER_LIST = TypeAdapter(list[TickerOut])


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _known_ticker(context: Context, request: Request, series: bool = False) -> str:
    """A ticker the window holds; with ``series``, also the portfolio's series, held or not yet (the page
    asks for its forecasts before the trainer has published any)."""
    ticker = queries.ticker(request.query_params, series)
    if ticker != PORTFOLIO_SERIES and not context.window.knows(ticker):
        raise QueryError("ticker: no such ticker (GET /api/tickers lists them)", status=404)
    return ticker


async def tickers(request: Request) -> Response:
    held = context_of(request).window.tickers()
    body = _TICKER_LIST.dump_json([TickerOut(ticker=t, newest_ts=ts) for t, ts in held])
    return Response(body, media_type=JSON)


async def bars(request: Request) -> Response:
    context = context_of(request)
    ticker = _known_ticker(context, request)
    since, until = queries.span(request.query_params).bounds(context.window.newest(ticker))
    last = queries.last(request.query_params)
    if context.window.holds_since(ticker, since):
        rows = context.window.bars(ticker, since, until, last)
    else:
        stored = await run_in_threadpool(read_bars, context.db, [ticker], since, until)
        rows = [{key: row.get(key) for key in BarOut.model_fields} for row in stored[-last if last else 0 :]]
    return Response(
        BarsOut.model_validate({"ticker": ticker, "bars": rows}).model_dump_json(), media_type=JSON
    )


async def predictions(request: Request) -> Response:
    context = context_of(request)
    ticker = _known_ticker(context, request, series=True)
    span = queries.span(request.query_params)
    horizon = queries.horizon(request.query_params)
    # The portfolio's series has forecasts, no bars: its "last N minutes" end at the newest bar of any ticker.
    newest = context.window.newest_of_all() if ticker == PORTFOLIO_SERIES else context.window.newest(ticker)
    since, until = span.bounds(newest)
    if span.minutes is not None:
        # The forecasts ahead of the newest bar belong to "the last N minutes" too: they are what is new.
        until = END_OF_TIME
    if context.window.holds_since(ticker, since):
        rows = context.window.predictions(ticker, since, until, horizon)
    else:
        stored = await run_in_threadpool(read_predictions, context.db, [ticker], since, until)
        rows = [
            {key: row.get(key) for key in PredictionOut.model_fields}
            for row in stored
            if horizon is None or row["horizon_min"] == horizon
        ]
    body = PredictionsOut.model_validate({"ticker": ticker, "predictions": rows})
    return Response(body.model_dump_json(), media_type=JSON)


async def portfolio(request: Request) -> Response:
    context = context_of(request)
    since, until = queries.span(request.query_params).bounds(context.window.newest_of_all())
    rows = context.window.portfolio(since, until, queries.last(request.query_params))
    return Response(PortfolioOut.model_validate({"rows": rows}).model_dump_json(), media_type=JSON)


ROUTES = [
    Route("/api/tickers", tickers),
    Route("/api/bars", bars),
    Route("/api/predictions", predictions),
    Route("/api/portfolio", portfolio),
]
