"""Live 1-minute bars from Yahoo Finance through ``yfinance.download`` (one batched request per cycle).

What yfinance 1.7 really returns, and what is done with it here:

* columns are a MultiIndex (Price, Ticker) for several tickers, and for one ticker too unless
  ``multi_level_index=False`` (then flat: Close, High, Low, Open, Volume); both are accepted;
* the index is tz-aware in the exchange's timezone: converted to UTC;
* the frame is the union of every ticker's minutes, with NaN holes where a ticker had no trade: those rows
  are dropped per ticker (never published as NaN);
* a ticker that failed (rate limits included) is only logged by yfinance and left as an all-NaN column:
  the log records are captured to tell "no trade" from "failed" and to notice rate limiting;
* the last row is the minute still in progress, and Yahoo can add a minute ~90 s late (yfinance #1225):
  minutes count as closed only 2 minutes after they start;
* a live fetch never holds the cycle past its period: the HTTP timeout given to yfinance is at most half the
  period, and the download runs in a worker thread the cycle waits for only until its deadline, because
  yfinance's own cookie/crumb requests wait up to 30 s whatever timeout it is given (``data.py``).

1-minute history exists for ~30 days and at most ~8 days fit in one request: backfills are split.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from services.producer.market_hours import MarketHours
from services.producer.sources.base import COLUMNS, Fetch, FetchError, empty_bars
from services.producer.sources.synthetic import floor_minute

logger = logging.getLogger(__name__)

DownloadFn = Callable[..., pd.DataFrame | None]

MAX_REQUEST_SPAN = timedelta(days=7)
MAX_HISTORY = timedelta(days=29)
SETTLE = timedelta(minutes=2)
MAX_REQUEST_TIMEOUT_S = 20.0
# Share of the download period a live fetch may take; the rest is for publishing and the cycle's log line.
DEADLINE_SHARE = 0.8
_RENAME = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
_LOGGED_FAILURE = re.compile(r"^(\[.*?\]):\s*(.*)$", re.DOTALL)


def yfinance_download(**kwargs: Any) -> pd.DataFrame | None:
    import yfinance  # imported on first use: slow, and only this source needs it

    # yfinance 1.7 calls pandas APIs that pandas 3 deprecates (``inplace=``): the warnings are about its
    # code, not our data, and would print on every cycle.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"yfinance(\.|$)")
    return yfinance.download(**kwargs)


class _CapturedErrors(logging.Filter):
    """Takes the per-ticker failures that ``yfinance.download`` logs instead of raising.

    yfinance logs each failure several times per download (``$NOPE: ...``, ``['NOPE']: ...``, the HTTP
    error behind it), every cycle; the producer reports a failing ticker once, so yfinance's error records
    are kept out of the log (at debug level under this module) and its warnings pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        message = record.getMessage().strip()
        logger.debug("yfinance: %s", message)
        match = _LOGGED_FAILURE.match(message)
        if not match:
            return False
        try:
            tickers = ast.literal_eval(match[1])
        except (ValueError, SyntaxError):
            return False
        for ticker in tickers:
            self.errors[str(ticker).upper()] = match[2]
        return False


def is_rate_limit(error: BaseException | str) -> bool:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return "RateLimit" in text or "Too Many Requests" in text or "429" in text


class YFinanceSource:
    name = "yfinance"

    def __init__(
        self,
        tickers: list[str],
        *,
        download: DownloadFn = yfinance_download,
        hours: MarketHours | None = None,
        period_s: float = 10.0,
    ) -> None:
        self.tickers = list(tickers)
        self._download = download
        self._hours = hours
        self._timeout_s = min(MAX_REQUEST_TIMEOUT_S, period_s / 2)
        self._deadline_s = period_s * DEADLINE_SHARE
        self._in_flight: threading.Thread | None = None

    def is_open(self, now: datetime) -> bool:
        return self._hours is None or self._hours.is_open(now)

    def backfill(self, minutes: int, now: datetime) -> Iterator[Fetch]:
        if minutes <= 0:
            return
        if self._hours is not None:
            start = self._hours.start_of_last(minutes, now)
        else:
            start = now - timedelta(minutes=minutes)
        start = max(start, now - MAX_HISTORY)
        while start < now:
            end = min(start + MAX_REQUEST_SPAN, now)
            yield self._fetch_span(start, end if end < now else None, now)
            start = end

    def fetch(self, since: datetime, now: datetime) -> Fetch:
        since = max(since, now - MAX_HISTORY)
        deadline = time.monotonic() + self._deadline_s
        if now - since <= MAX_REQUEST_SPAN:
            return self._fetch_span(since, None, now, deadline)
        parts = [self._fetch_span(start, end, now, deadline) for start, end in _spans(since, now)]
        return Fetch(
            pd.concat([p.bars for p in parts], ignore_index=True),
            closed_before=parts[-1].closed_before,
            errors={k: v for p in parts for k, v in p.errors.items()},
            rate_limited=any(p.rate_limited for p in parts),
        )

    def _fetch_span(
        self, start: datetime, end: datetime | None, now: datetime, deadline: float | None = None
    ) -> Fetch:
        """One download; with a ``deadline`` (``time.monotonic``) it is given up on when that passes."""
        kwargs: dict[str, Any] = {
            "tickers": self.tickers,
            "start": floor_minute(start),
            "end": end,
            "interval": "1m",
            "auto_adjust": True,
            "prepost": False,
            "actions": False,
            "progress": False,
            "threads": True,
            # A backfill is no cycle: it may take the full request timeout.
            "timeout": MAX_REQUEST_TIMEOUT_S if deadline is None else self._timeout_s,
        }
        if deadline is None:
            frame, errors = _download_reporting_errors(self._download, kwargs)
        else:
            frame, errors = self._download_before(deadline, kwargs)
        bars = frame_to_bars(frame, self.tickers)
        rate_limited = any(is_rate_limit(message) for message in errors.values())
        if bars.empty and errors:
            kind = "rate_limit" if rate_limited else "source"
            raise FetchError(kind, f"every ticker failed: {_summary(errors)}")
        return Fetch(bars, closed_before=floor_minute(now - SETTLE), errors=errors, rate_limited=rate_limited)

    def _download_before(
        self, deadline: float, kwargs: dict[str, Any]
    ) -> tuple[pd.DataFrame | None, dict[str, str]]:
        # One download at a time: a request Yahoo sits on is left to finish in the background rather than
        # stacking a new thread onto it every cycle.
        if self._in_flight is not None and self._in_flight.is_alive():
            raise FetchError("timeout", "the previous request to Yahoo has not returned yet")
        outcome: list[tuple[pd.DataFrame | None, dict[str, str]] | BaseException] = []

        def work() -> None:
            try:
                outcome.append(_download_reporting_errors(self._download, kwargs))
            except BaseException as error:  # noqa: BLE001 (handed to the cycle below)
                outcome.append(error)

        worker = threading.Thread(target=work, name="yfinance-download", daemon=True)
        self._in_flight = worker
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise FetchError("timeout", f"no answer from Yahoo within {self._deadline_s:.1f} s")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result


def _download_reporting_errors(
    download: DownloadFn, kwargs: dict[str, Any]
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The frame and the per-ticker failures yfinance only logged."""
    captured = _CapturedErrors()
    yf_logger = logging.getLogger("yfinance")
    yf_logger.addFilter(captured)
    try:
        frame = download(**kwargs)
    except Exception as error:
        # yfinance raises only what escapes its per-ticker handling: rate limits, network, Yahoo down.
        kind = "rate_limit" if is_rate_limit(error) else "network"
        raise FetchError(kind, f"{type(error).__name__}: {error}") from error
    finally:
        yf_logger.removeFilter(captured)
    return frame, captured.errors


def _spans(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime | None]]:
    while start < end:
        stop = min(start + MAX_REQUEST_SPAN, end)
        yield start, (stop if stop < end else None)
        start = stop


def _summary(errors: dict[str, str]) -> str:
    by_message: dict[str, list[str]] = {}
    for ticker, message in errors.items():
        by_message.setdefault(message, []).append(ticker)
    return "; ".join(f"{','.join(sorted(t))}: {m}" for m, t in by_message.items())


def frame_to_bars(frame: pd.DataFrame | None, tickers: list[str]) -> pd.DataFrame:
    """A ``yfinance.download`` frame in long format (``sources.base.COLUMNS``), UTC, holes dropped."""
    if frame is None or frame.empty:
        return empty_bars()
    if isinstance(frame.columns, pd.MultiIndex):
        price_level = _price_level(frame.columns)
        # stack, not melt: it keeps the (ts, ticker) index the rest of the adapter reads.
        long = frame.stack(level=1 - price_level, future_stack=True)  # noqa: PD013
        long.index = long.index.set_names(["ts", "ticker"])
        long = long.reset_index()
    else:
        if len(tickers) != 1:
            raise ValueError("flat yfinance columns only come back for a single ticker")
        long = frame.rename_axis("ts").reset_index()
        long["ticker"] = tickers[0]
    long = long.rename(columns=_RENAME)
    missing = [c for c in COLUMNS if c not in long.columns]
    if missing:
        raise FetchError("source", f"yfinance frame without columns {missing}: {list(frame.columns)}")
    long = long[list(COLUMNS)]
    long["ticker"] = long["ticker"].astype(str).str.upper()
    long = long[long["ticker"].isin(tickers)]
    # A hole (no trade that minute, or a failed ticker's column) is all NaN; a partly NaN row is kept
    # for validation to reject and log.
    long = long.dropna(subset=["open", "high", "low", "close", "volume"], how="all")
    ts = pd.DatetimeIndex(long["ts"])
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    long["ts"] = ts.floor("min").as_unit("ns")
    # The minute in progress may carry the time of its last trade: keep the latest row per minute.
    long = long.drop_duplicates(subset=["ticker", "ts"], keep="last")
    return long.sort_values(["ticker", "ts"], kind="stable").reset_index(drop=True)


def _price_level(columns: pd.MultiIndex) -> int:
    if "Price" in columns.names:
        return list(columns.names).index("Price")
    return 0 if "Close" in columns.get_level_values(0) else 1
