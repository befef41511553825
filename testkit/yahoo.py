"""A stand-in for Yahoo Finance on loopback that the real ``yfinance`` (1.7.0, as pinned) talks to unchanged.

How yfinance is pointed at it: yfinance hard-codes its handshake URLs (``https://fc.yahoo.com``,
``https://query1.finance.yahoo.com/v1/test/getcrumb``, ``https://guce.yahoo.com/consent`` in ``data.py``) and
binds ``_BASE_URL_`` into ``scrapers/history.py`` and ``base.py`` at import, so patching constants would miss
most of the traffic. Instead the stand-in is an HTTPS proxy: :meth:`YahooStandIn.session` returns the same
``curl_cffi`` session yfinance would build (``impersonate="chrome"``) with ``proxies`` set to the stand-in and
``verify`` set to the stand-in's own certificate. Every request keeps its real ``https://...yahoo.com`` URL;
the stand-in answers the ``CONNECT``, terminates TLS with a certificate for ``*.yahoo.com`` and
``*.finance.yahoo.com`` made by ``openssl`` for the run, and serves:

* the cookie/crumb handshake: ``fc.yahoo.com`` (404 with an ``A3`` cookie), ``/v1/test/getcrumb`` on
  query1 and query2 (the crumb as text), and the consent flow yfinance falls back to
  (``guce.yahoo.com/consent`` form with ``csrfToken`` and ``sessionId``,
  ``consent.yahoo.com/v2/collectConsent``, ``guce.yahoo.com/copyConsent``);
* ``/v8/finance/chart/<symbol>``: ``chart.result[0]`` with ``meta`` (the fields ``scrapers/history.py``
  reads: ``currency``, ``instrumentType``, ``exchangeTimezoneName``, ``priceHint``, ``validRanges``,
  ``currentTradingPeriod``, ``tradingPeriods``), ``timestamp`` and ``indicators.quote[0]`` arrays with
  ``null`` where a minute had no trade; the timezone probe (``range=1d&interval=1d``) and 1-minute ranges
  (``period1``/``period2``), the minute in progress growing on every call;
* a symbol with no data: HTTP 404 with ``chart.error`` ``{"code": "Not Found", "description": "No data found,
  symbol may be delisted"}``;
* faults on demand (:meth:`YahooStandIn.add_fault`): HTTP 429 ``Too Many Requests``, a 5xx, an answer slower
  than the client's timeout, a malformed (truncated) JSON body.

The served market is open around the clock (a ``tradingPeriods`` day from local midnight to midnight), so the
tests do not depend on the hour they run at; everything else is in the exchange's timezone, as Yahoo sends it.
"""

from __future__ import annotations

import json
import socketserver
import ssl
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pandas as pd

CHART_PATH = "/v8/finance/chart/"
CRUMB_PATH = "/v1/test/getcrumb"
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
DELISTED_ERROR = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
# Yahoo keeps about 30 days of 1-minute bars; serving fewer keeps the bodies small.
MAX_SERVED_MINUTES = 3 * 24 * 60
CRUMB = "StandInCrumb1"
_COOKIE_EXPIRES = "Wed, 01 Jan 2031 00:00:00 GMT"


@dataclass
class Fault:
    """Answer ``times`` matching requests (``-1``: every one) with ``status``/``body``, after ``delay_s``."""

    path_prefix: str
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    times: int = -1
    symbols: frozenset[str] | None = None
    content_type: str = "text/plain;charset=utf-8"

    def matches(self, path: str, symbol: str | None) -> bool:
        if self.times == 0 or not path.startswith(self.path_prefix):
            return False
        return self.symbols is None or symbol in self.symbols


@dataclass(frozen=True)
class Request:
    """One request the stand-in answered (``at`` on the ``time.monotonic`` clock)."""

    at: float
    host: str
    path: str
    query: dict[str, str]
    status: int

    @property
    def symbol(self) -> str | None:
        return self.path[len(CHART_PATH) :] if self.path.startswith(CHART_PATH) else None


@dataclass
class _Config:
    timezone: str
    delisted: set[str] = field(default_factory=set)
    # (symbol, minute as epoch seconds) -> the quote fields sent as null that minute.
    nulls: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)


class YahooStandIn:
    """The stand-in server; a context manager. ``directory`` receives its certificate and key."""

    def __init__(self, directory: Path, timezone: str = "America/New_York") -> None:
        self.config = _Config(timezone)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._chart_calls: dict[str, int] = {}
        self.cert = directory / "yahoo-stand-in.pem"
        key = directory / "yahoo-stand-in.key"
        _make_certificate(self.cert, key)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.cert, key)
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="yahoo-stand-in", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()  # wakes the slow answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    # --- what the tests set -----------------------------------------------------------------------

    def delist(self, *symbols: str) -> None:
        with self.lock:
            self.config.delisted.update(s.upper() for s in symbols)

    def send_nulls(self, symbol: str, minute: datetime, fields: tuple[str, ...]) -> None:
        """Send ``null`` for ``fields`` (of open, high, low, close, volume) of ``symbol`` at ``minute``."""
        with self.lock:
            self.config.nulls[(symbol.upper(), int(minute.timestamp()) // 60 * 60)] = fields

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.config.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.config.faults.clear()

    # --- what the tests read ----------------------------------------------------------------------

    def chart_requests(self, symbol: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.symbol and (symbol is None or r.symbol == symbol)]

    def session(self) -> Any:
        """The session yfinance builds for itself (``_http.new_session``), routed through the stand-in."""
        from curl_cffi import requests as curl_requests

        return curl_requests.Session(
            impersonate="chrome",
            proxies={"http": self.url, "https": self.url},
            # curl_cffi takes a CA bundle path here (passed on as CURLOPT_CAINFO); its annotation says bool.
            verify=str(self.cert),  # type: ignore[arg-type]
        )

    def download(self, **kwargs: Any) -> pd.DataFrame | None:
        """``yfinance.download`` as the producer calls it, with a fresh session per call as yfinance makes."""
        import yfinance

        return yfinance.download(session=self.session(), **kwargs)

    # --- the answers ------------------------------------------------------------------------------

    def bar(self, symbol: str, minute: int, now: float) -> dict[str, float | int]:
        """The values served for ``symbol`` at ``minute`` (epoch seconds); the minute in progress grows."""
        base = 50.0 + zlib.crc32(symbol.encode()) % 400
        close = round(base + (minute // 60 % 89) * 0.05, 4)
        volume = 1_000 + minute // 60 % 37
        if minute <= now < minute + 60:
            calls = self._chart_calls.get(symbol, 0)
            close = round(close + 0.01 * calls, 4)
            volume += 10 * calls
        return {
            "open": round(close - 0.02, 4),
            "high": round(close + 0.05, 4),
            "low": round(close - 0.05, 4),
            "close": close,
            "volume": volume,
        }

    def answer(self, host: str, path: str, query: dict[str, str]) -> tuple[int, bytes, str, list[str]]:
        """Status, body, content type and Set-Cookie values for one request."""
        if host == "fc.yahoo.com":
            # Yahoo answers fc.yahoo.com with a 404 page; only its A3 cookie matters to yfinance.
            cookie = f"A3=d=StandIn; Expires={_COOKIE_EXPIRES}; Domain=.yahoo.com; Path=/; Secure; HttpOnly"
            return 404, b"<html><body>404 Not Found</body></html>", "text/html", [cookie]
        if path == CRUMB_PATH:
            return 200, CRUMB.encode(), "text/plain;charset=utf-8", []
        if host == "guce.yahoo.com" and path == "/consent":
            form = (
                '<html><body><form method="post" action="https://consent.yahoo.com/v2/collectConsent">'
                '<input type="hidden" name="csrfToken" value="StandInCsrf"/>'
                '<input type="hidden" name="sessionId" value="StandInSession"/>'
                '<button type="submit" name="agree" value="agree">Accept all</button></form></body></html>'
            )
            return 200, form.encode(), "text/html", []
        if host in ("consent.yahoo.com", "guce.yahoo.com"):
            cookie = f"GUCS=StandIn; Expires={_COOKIE_EXPIRES}; Domain=.yahoo.com; Path=/; Secure"
            return 200, b"<html><body>ok</body></html>", "text/html", [cookie]
        if path.startswith(CHART_PATH):
            return self._chart(path[len(CHART_PATH) :].upper(), query)
        return self._other(path, query)

    def _other(self, path: str, query: dict[str, str]) -> tuple[int, bytes, str, list[str]]:
        """What yfinance asks when the chart gave no timezone (``base.py`` falls back to ``Ticker.info``):
        Yahoo knows no quote for a symbol the stand-in does not serve either."""
        json_type = "application/json;charset=utf-8"
        if path.startswith("/v10/finance/quoteSummary/"):
            symbol = path.rsplit("/", 1)[-1].upper()
            error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
            return 404, json.dumps({"quoteSummary": {"result": None, "error": error}}).encode(), json_type, []
        if path == "/v7/finance/quote":
            return 200, json.dumps({"quoteResponse": {"result": [], "error": None}}).encode(), json_type, []
        if "/finance/timeseries/" in path:
            return 200, json.dumps({"timeseries": {"result": [], "error": None}}).encode(), json_type, []
        body = {
            "finance": {"result": None, "error": {"code": "Not Found", "description": "HTTP 404 Not Found"}}
        }
        return 404, json.dumps(body).encode(), json_type, []

    def _chart(self, symbol: str, query: dict[str, str]) -> tuple[int, bytes, str, list[str]]:
        json_type = "application/json;charset=utf-8"
        if symbol in self.config.delisted:
            body = {"chart": {"result": None, "error": DELISTED_ERROR}}
            return 404, json.dumps(body).encode(), json_type, []
        now = time.time()
        interval = query.get("interval", "1d")
        if interval == "1m":
            self._chart_calls[symbol] = self._chart_calls.get(symbol, 0) + 1
            end = min(int(query.get("period2", now)), int(now))
            start = max(int(query.get("period1", end - 86_400)), end - MAX_SERVED_MINUTES * 60)
            minutes = list(range(-(-start // 60) * 60, end // 60 * 60 + 1, 60))
        else:  # the timezone probe (range=1d&interval=1d): today's daily bar
            minutes = [int(self._local_midnight(now).timestamp())]
        quote: dict[str, list[float | int | None]] = {
            k: [] for k in ("open", "high", "low", "close", "volume")
        }
        for minute in minutes:
            values = self.bar(symbol, minute, now)
            missing = self.config.nulls.get((symbol, minute), ())
            for name, column in quote.items():
                column.append(None if name in missing else values[name])
        result = {
            "meta": self._meta(symbol, now, interval, minutes),
            "timestamp": minutes,
            "indicators": {"quote": [quote]},
        }
        return 200, json.dumps({"chart": {"result": [result], "error": None}}).encode(), json_type, []

    def _local_midnight(self, moment: float) -> datetime:
        local = datetime.fromtimestamp(moment, ZoneInfo(self.config.timezone))
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    def _meta(self, symbol: str, now: float, interval: str, minutes: list[int]) -> dict[str, Any]:
        zone = ZoneInfo(self.config.timezone)
        today = self._local_midnight(now)
        offset = int((today.utcoffset() or timedelta(0)).total_seconds())
        abbreviation = today.tzname() or "UTC"
        days = sorted({datetime.fromtimestamp(m, zone).date() for m in minutes} | {today.date()})

        def period(start: datetime, end: datetime) -> dict[str, Any]:
            return {
                "timezone": abbreviation,
                "start": int(start.timestamp()),
                "end": int(end.timestamp()),
                "gmtoffset": offset,
            }

        def day(d: Any) -> tuple[datetime, datetime]:
            start = datetime(d.year, d.month, d.day, tzinfo=zone)
            return start, start + timedelta(days=1)

        last_close = self.bar(symbol, minutes[-1], now)["close"] if minutes else None
        start, end = day(today.date())
        return {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "NMS",
            "fullExchangeName": "NasdaqGS",
            "instrumentType": "EQUITY",
            "firstTradeDate": 345479400,
            "regularMarketTime": int(now),
            "hasPrePostMarketData": True,
            "gmtoffset": offset,
            "timezone": abbreviation,
            "exchangeTimezoneName": self.config.timezone,
            "regularMarketPrice": last_close,
            "chartPreviousClose": last_close,
            "priceHint": 2,
            "currentTradingPeriod": {
                "pre": period(start, start),
                "regular": period(start, end),
                "post": period(end, end),
            },
            "tradingPeriods": [[period(*day(d))] for d in days],
            "dataGranularity": interval,
            "range": "",
            "validRanges": VALID_RANGES,
        }

    def fault_for(self, path: str, symbol: str | None) -> Fault | None:
        with self.lock:
            for fault in self.config.faults:
                if fault.matches(path, symbol):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def record(self, host: str, path: str, query: dict[str, str], status: int) -> None:
        with self.lock:
            self.requests.append(Request(time.monotonic(), host, path, query, status))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], stand_in: YahooStandIn) -> None:
        self.stand_in = stand_in
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive inside the tunnel, as curl expects from an HTTPS origin.
    protocol_version = "HTTP/1.1"
    server: _Server
    tunnel_host = ""

    def do_CONNECT(self) -> None:
        host = self.path.rsplit(":", 1)[0]
        if not (host == "yahoo.com" or host.endswith(".yahoo.com")):
            self.send_error(403, "the Yahoo stand-in only tunnels to *.yahoo.com")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        try:
            tls = self.server.stand_in.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        self.tunnel_host = host
        self.connection = tls
        self.rfile = tls.makefile("rb")
        # The stdlib writer wrapper StreamRequestHandler uses; no public name exists for it.
        self.wfile = socketserver._SocketWriter(tls)  # type: ignore[attr-defined]  # noqa: SLF001
        self.close_connection = False

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        stand_in = self.server.stand_in
        url = urlsplit(self.path)
        host = self.tunnel_host or (url.hostname or self.headers.get("Host") or "").split(":")[0]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path or "/"
        symbol = path[len(CHART_PATH) :].upper() if path.startswith(CHART_PATH) else None
        fault = stand_in.fault_for(path, symbol)
        cookies: list[str]
        if fault is not None:
            status, body, content_type, cookies = fault.status, fault.body, fault.content_type, []
            if fault.delay_s and stand_in.closing.wait(fault.delay_s):
                return
        else:
            with stand_in.lock:
                status, body, content_type, cookies = stand_in.answer(host, path, query)
        stand_in.record(host, path, query, status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client gave up (a slow answer past its timeout): nothing left to tell it.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it)
        return


def too_many_requests(times: int = -1, symbols: frozenset[str] | None = None) -> Fault:
    """Yahoo's rate limit on the chart API, as yfinance checks it (status 429, ``data.py``)."""
    return Fault(CHART_PATH, 429, b"Edge: Too Many Requests", times=times, symbols=symbols)


def server_error(status: int = 502, times: int = -1) -> Fault:
    return Fault(
        CHART_PATH, status, b"<html><body>Bad Gateway</body></html>", times=times, content_type="text/html"
    )


def slow_answer(delay_s: float, path_prefix: str = CHART_PATH, times: int = -1) -> Fault:
    """An answer that comes after ``delay_s``: past the client's timeout, the client has given up."""
    body = json.dumps({"chart": {"result": None, "error": None}}).encode()
    return Fault(path_prefix, 200, body, delay_s=delay_s, times=times, content_type="application/json")


def malformed_body(times: int = -1) -> Fault:
    """A 200 whose JSON stops half-way, as a cut connection or a broken edge cache leaves it."""
    return Fault(
        CHART_PATH,
        200,
        b'{"chart":{"result":[{"meta":{"currency":"USD","symbol"',
        times=times,
        content_type="application/json;charset=utf-8",
    )


_CERT_LOCK = threading.Lock()


def _make_certificate(cert: Path, key: Path) -> None:
    """A self-signed certificate for Yahoo's host names, trusted only by the sessions the stand-in makes."""
    with _CERT_LOCK:
        if cert.exists() and key.exists():
            return
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=Yahoo stand-in",
                "-addext",
                "subjectAltName=DNS:*.yahoo.com,DNS:*.finance.yahoo.com,DNS:yahoo.com",
            ],
            check=True,
            capture_output=True,
        )
