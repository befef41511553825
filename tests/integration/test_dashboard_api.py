"""The dashboard's read API on the real local stack: the contract, the minute in progress, bad input as a JSON
4xx, spans older than the window, and the event stream."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, Gauge

from shared.ops import Health, OpsServer
from shared.schemas import format_ts
from shared.settings import PORTFOLIO_SERIES
from testkit.bars import T0, bar_at, forecast, synthetic_bar
from testkit.waiting import wait_until
from tests.integration.dashboard_support import DashboardCase

pytestmark = pytest.mark.integration

BAR_KEYS = {"ts", "open", "high", "low", "close", "volume", "final"}
PREDICTION_KEYS = {"ts", "based_on_ts", "horizon_min", "yhat", "q10", "q90", "model_version"}


def ts(minute: int) -> str:
    return format_ts(T0 + timedelta(minutes=minute))


def _newest(dashboard: DashboardCase, ticker: str) -> str | None:
    tickers = {t["ticker"]: t["newest_ts"] for t in dashboard.get("/api/tickers")[1]}
    return tickers.get(ticker)


def test_the_api_serves_stored_history_the_stream_and_the_minute_in_progress(
    dashboard: DashboardCase,
) -> None:
    stored = [bar_at(t, m) for t in ("AAA", "BBB") for m in range(50)]
    forecasts = [forecast("AAA", m, h) for m in range(45, 50) for h in (1, 5)]
    dashboard.store(stored, forecasts, open_bars=[bar_at("AAA", 50, final=False)])
    dashboard.start()

    # Filled from the database at start, the bar still in progress in `latest` included.
    assert dashboard.get("/api/tickers") == (
        200, [{"ticker": "AAA", "newest_ts": ts(50)}, {"ticker": "BBB", "newest_ts": ts(49)}]
    )  # fmt: skip
    # From the stream: a revision of the minute in progress and the next minute, still open.
    dashboard.publish(
        [bar_at("AAA", 50, final=True, rev=2), bar_at("AAA", 51, final=False, rev=0)],
        [forecast("AAA", 51, h) for h in (1, 5, 15, 30)],
    )
    wait_until(lambda: _newest(dashboard, "AAA") == ts(51), 30, "the streamed minute in the API")

    status, body = dashboard.get("/api/bars?ticker=AAA&minutes=10")
    assert status == 200 and body["ticker"] == "AAA"
    assert [b["ts"] for b in body["bars"]] == [ts(m) for m in range(42, 52)]
    assert all(set(b) == BAR_KEYS for b in body["bars"])
    assert body["bars"][-2]["final"] is True and body["bars"][-1]["final"] is False
    assert body["bars"][-1]["close"] == pytest.approx(105.1)

    status, body = dashboard.get(f"/api/bars?ticker=aaa&since={ts(10)}&until={ts(12)}")
    assert status == 200 and [b["ts"] for b in body["bars"]] == [ts(10), ts(11), ts(12)]

    # Forecasts keyed by (ticker, ts, horizon): minute 50 has both its 1- and 5-minute forecasts.
    wait_until(
        lambda: len(dashboard.get("/api/predictions?ticker=AAA&minutes=10")[1]["predictions"]) == 14,
        30, "the streamed forecasts",
    )  # fmt: skip
    status, body = dashboard.get("/api/predictions?ticker=AAA&minutes=10")
    rows = body["predictions"]
    assert all(set(p) == PREDICTION_KEYS for p in rows)
    assert [(p["ts"], p["horizon_min"]) for p in rows if p["ts"] == ts(50)] == [(ts(50), 1), (ts(50), 5)]
    assert rows[-1] == {
        "ts": ts(81), "based_on_ts": ts(51), "horizon_min": 30, "yhat": 101.0, "q10": 100.0, "q90": 102.0,
        "model_version": "per_stock-return-ab12cd34.0",
    }  # fmt: skip
    status, body = dashboard.get("/api/predictions?ticker=AAA&minutes=10&horizon=15")
    assert [(p["ts"], p["horizon_min"]) for p in body["predictions"]] == [(ts(66), 15)]

    status, body = dashboard.get("/api/portfolio?minutes=3")
    assert status == 200
    assert body["rows"][0] == {"ts": ts(49), "close": {"AAA": 104.9, "BBB": 104.9}}
    assert [r["ts"] for r in body["rows"]] == [ts(49), ts(50), ts(51)]

    status, body = dashboard.get("/api/scores")
    assert status == 200 and body["rows"] == [] and body["text"] == []
    assert [c["key"] for c in body["columns"]][:3] == ["lineage", "ticker", "forecaster"]

    status, body = dashboard.get("/api/health")
    assert status == 200 and set(body["services"]) == {"producer", "sink", "trainer"}
    assert body["dashboard"]["bars"] == 102 and body["dashboard"]["ready"] is True


def test_bad_input_gets_a_json_4xx_that_does_not_echo_it(dashboard: DashboardCase) -> None:
    dashboard.store([bar_at("AAA", 0)], [])
    dashboard.start()
    long_ticker = "A" * 5000
    cases = {
        f"/api/bars?ticker={long_ticker}": 400,
        "/api/bars?ticker=%3Cscript%3Ealert(1)%3C/script%3E": 400,
        "/api/bars": 400,
        "/api/bars?ticker=ZZZZ": 404,
        "/api/bars?ticker=AAA&minutes=abc": 400,
        "/api/bars?ticker=AAA&minutes=-5": 400,
        "/api/bars?ticker=AAA&minutes=0": 400,
        "/api/bars?ticker=AAA&minutes=99999999999": 400,
        "/api/bars?ticker=AAA&since=yesterday": 400,
        "/api/bars?ticker=AAA&since=2026-11-25T14:31:00": 400,
        f"/api/bars?ticker=AAA&since={'9' * 5000}": 400,
        "/api/bars?ticker=AAA&minutes=5&since=2026-11-25T14:31:00Z": 400,
        "/api/predictions?ticker=AAA&horizon=abc": 400,
        "/api/predictions?ticker=AAA&horizon=-1": 400,
        "/api/portfolio?minutes=%00": 400,
        "/api/nothing-here?x=%3Cb%3E": 404,
    }
    for path, expected in cases.items():
        status, content_type, raw = dashboard.raw(path)
        body = json.loads(raw)
        assert (path[:60], status) == (path[:60], expected)
        assert content_type == "application/json" and set(body) == {"error", "detail"}
        assert b"<" not in raw and b"AAAAAAAAAAAAAAAA" not in raw and b"yesterday" not in raw
    assert "Traceback" not in dashboard.logged()


def test_a_span_older_than_the_window_is_read_from_the_database(dashboard: DashboardCase) -> None:
    dashboard.store([bar_at("AAA", m) for m in range(60)], [forecast("AAA", 0, 1)])
    dashboard.start(PORTFOLIO_HISTORY_MINUTES="10")
    assert dashboard.get("/api/health")[1]["dashboard"]["bars"] <= 20
    status, body = dashboard.get(f"/api/bars?ticker=AAA&since={ts(0)}")
    assert status == 200 and [b["ts"] for b in body["bars"]] == [ts(m) for m in range(60)]
    status, body = dashboard.get(f"/api/predictions?ticker=AAA&since={ts(0)}&until={ts(5)}")
    assert [(p["ts"], p["horizon_min"]) for p in body["predictions"]] == [(ts(1), 1)]


def test_the_portfolio_spans_sessions_and_its_forecasts_are_served(dashboard: DashboardCase) -> None:
    friday = [T0 - timedelta(days=3) + timedelta(minutes=m) for m in range(390)]
    portfolio_forecasts = [
        forecast("AAA", 9, h).model_copy(update={"ticker": PORTFOLIO_SERIES}) for h in (1, 5)
    ]
    dashboard.store(
        [*(synthetic_bar(t, at, 100.0, final=True) for t in ("AAA", "BBB") for at in friday),
         *(bar_at(t, m) for t in ("AAA", "BBB") for m in range(10))],
        portfolio_forecasts,
    )  # fmt: skip
    dashboard.start()
    # Five calendar days, the newest 20 trading minutes: Friday's last 10 beside Monday's 10.
    status, body = dashboard.get(f"/api/portfolio?minutes={5 * 1440}&last=20")
    assert status == 200
    assert [r["ts"] for r in body["rows"]] == [
        *(format_ts(at) for at in friday[-10:]), *(ts(m) for m in range(10))
    ]  # fmt: skip
    status, body = dashboard.get(f"/api/bars?ticker=BBB&minutes={5 * 1440}&last=12")
    assert [b["ts"] for b in body["bars"]] == [
        *(format_ts(at) for at in friday[-2:]),
        *(ts(m) for m in range(10)),
    ]

    # The portfolio's series: forecasts only, never listed as a ticker; "the last N minutes" end at the
    # newest bar of any ticker; asked for before any forecast of it is held, it has none (not a 404).
    assert "_PORTFOLIO" not in {t["ticker"] for t in dashboard.get("/api/tickers")[1]}
    status, body = dashboard.get("/api/predictions?ticker=_PORTFOLIO&minutes=5")
    assert status == 200 and body["ticker"] == "_PORTFOLIO"
    assert [(p["ts"], p["horizon_min"]) for p in body["predictions"]] == [(ts(10), 1), (ts(14), 5)]
    assert dashboard.get("/api/bars?ticker=_PORTFOLIO")[0] == 400


def _read_events(sock: socket.socket, until: float) -> list[dict[str, object]]:
    buffer = b""
    events: list[dict[str, object]] = []
    while time.monotonic() < until and not events:
        try:
            buffer += sock.recv(65536)
        except TimeoutError:
            continue
        for line in buffer.split(b"\n"):
            if line.startswith(b"data: "):
                events += json.loads(line[6:])["events"]
    return events


def test_the_stream_sends_new_bars_and_forecasts_to_every_client(dashboard: DashboardCase) -> None:
    dashboard.start()
    clients = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", dashboard.port), timeout=1)
        sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        assert b"text/event-stream" in sock.recv(4096)
        clients.append(sock)
    wait_until(lambda: dashboard.get("/api/health")[1]["dashboard"]["clients"] == 2, 10, "two clients")
    dashboard.publish([bar_at("CCC", 0, final=False)], [forecast("CCC", 0, 5)])
    for sock in clients:
        events = _read_events(sock, time.monotonic() + 20)
        assert {(e["kind"], e["ticker"], e["ts"]) for e in events} <= {
            ("bar", "CCC", ts(0)), ("prediction", "CCC", ts(5))
        }  # fmt: skip
        assert events
        sock.close()


def test_health_asks_each_service_where_it_answers(dashboard: DashboardCase) -> None:
    registry, health = CollectorRegistry(), Health("kafka")
    health.set("kafka", True)
    Gauge("portfolio_consumer_lag", "lag", registry=registry).set(7)
    with OpsServer("127.0.0.1", 0, registry, health) as sink:
        dashboard.start(
            PORTFOLIO_SINK_HTTP_PORT=str(sink.port), PORTFOLIO_DASHBOARD_SERVICE_HOSTS="sink=localhost"
        )
        status, body = dashboard.get("/api/health")
    assert status == 200
    assert body["services"]["sink"] == {
        "ready": True, "lag": 7, "url": f"http://localhost:{sink.port}/healthz"
    }  # fmt: skip
    # The others were started on ports chosen at start: nothing to ask.
    assert body["services"]["producer"] == {"ready": None, "lag": None, "url": None}
