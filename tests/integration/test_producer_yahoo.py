"""The yfinance source through the real yfinance 1.7 against the Yahoo stand-in (``testkit.yahoo``), and
through the real producer loop to the real broker. Nothing of yfinance is replaced: it builds its requests,
does its cookie/crumb handshake, parses Yahoo's JSON and reports failures its own way."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import yfinance
from yfinance.data import YfData

from services.producer.cycle import prepare
from services.producer.revisions import RevisionTracker
from services.producer.sources.base import FetchError
from services.producer.sources.yfinance_source import YFinanceSource
from shared.schemas import BarV1
from shared.settings import Settings
from testkit.yahoo import (
    CRUMB,
    CRUMB_PATH,
    YahooStandIn,
    malformed_body,
    server_error,
    slow_answer,
    too_many_requests,
)
from tests.integration.test_producer_sources import producer_running, read_bars

pytestmark = pytest.mark.integration

ALL_FIELDS = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module", autouse=True)
def _yfinance_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    # yfinance keeps timezones and Yahoo's cookie on disk (~/.cache/py-yfinance): not the developer's.
    yfinance.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


@pytest.fixture
def yahoo(tmp_path: Path) -> Iterator[YahooStandIn]:
    # yfinance keeps one YfData per process with its cookie and crumb: drop it, so each test starts the way
    # a fresh producer does, handshake included.
    YfData._instances.pop(YfData, None)
    with YahooStandIn(tmp_path) as stand_in:
        yield stand_in


def now_utc() -> datetime:
    return datetime.now(UTC)


def source_for(yahoo: YahooStandIn, tickers: list[str], period_s: float = 2.0) -> YFinanceSource:
    return YFinanceSource(tickers, download=yahoo.download, period_s=period_s)


# --- the real library against the stand-in --------------------------------------------------------


def test_the_cookie_and_crumb_handshake_comes_before_the_chart_requests_that_carry_the_crumb(
    yahoo: YahooStandIn,
) -> None:
    fetch = source_for(yahoo, ["AAPL"]).fetch(now_utc() - timedelta(minutes=5), now_utc())

    hosts = [(r.host, r.path) for r in yahoo.requests]
    assert hosts.index(("fc.yahoo.com", "/")) < next(i for i, (_, p) in enumerate(hosts) if p == CRUMB_PATH)
    charts = yahoo.chart_requests("AAPL")
    assert {r.query.get("interval") for r in charts} == {"1d", "1m"}  # the timezone probe, then the bars
    assert all(r.query.get("crumb") == CRUMB for r in charts)
    assert set(fetch.bars["ticker"]) == {"AAPL"}
    assert len(fetch.bars) >= 5


def test_served_minutes_come_back_in_utc_with_the_values_yahoo_sent(yahoo: YahooStandIn) -> None:
    now = now_utc()
    fetch = source_for(yahoo, ["AAPL", "MSFT"]).fetch(now - timedelta(minutes=10), now)

    served_at = time.time()
    for row in fetch.bars.itertuples():
        minute = int(row.ts.timestamp())
        if minute + 60 <= served_at - 1:  # closed minutes do not change between calls
            sent = yahoo.bar(row.ticker, minute, served_at)
            assert (row.open, row.high, row.low, row.close, row.volume) == (
                sent["open"],
                sent["high"],
                sent["low"],
                sent["close"],
                sent["volume"],
            )
    assert str(fetch.bars["ts"].dt.tz) == "UTC"
    assert fetch.bars.groupby("ticker").size().min() >= 10


def test_nulls_inside_a_series_are_never_bars_with_nan(yahoo: YahooStandIn) -> None:
    now = now_utc()
    no_trade = (now - timedelta(minutes=4)).replace(second=0, microsecond=0)
    close_missing = (now - timedelta(minutes=3)).replace(second=0, microsecond=0)
    yahoo.send_nulls("AAPL", no_trade, ALL_FIELDS)
    yahoo.send_nulls("AAPL", close_missing, ("close",))

    fetch = source_for(yahoo, ["AAPL", "MSFT"]).fetch(now - timedelta(minutes=8), now)
    prepared = prepare(fetch.bars, fetch.closed_before, RevisionTracker(), "yfinance")

    published = [BarV1.model_validate_json(value) for _, value in prepared.messages]
    aapl_minutes = {b.ts for b in published if b.ticker == "AAPL"}
    assert no_trade not in aapl_minutes and close_missing not in aapl_minutes
    assert no_trade in {b.ts for b in published if b.ticker == "MSFT"}  # the other ticker traded
    assert all(math.isfinite(v) for b in published for v in (b.open, b.high, b.low, b.close))
    assert [(r.ticker, r.reason) for r in prepared.invalid] == [("AAPL", "missing_value")]


@pytest.mark.parametrize("fault", [server_error(502), malformed_body()], ids=["5xx", "malformed"])
def test_a_5xx_or_a_malformed_body_is_a_failed_fetch_and_the_next_one_recovers(
    yahoo: YahooStandIn, fault: object
) -> None:
    source = source_for(yahoo, ["AAPL"])
    yahoo.add_fault(fault)  # type: ignore[arg-type]
    with pytest.raises(FetchError) as failed:
        source.fetch(now_utc() - timedelta(minutes=3), now_utc())
    assert failed.value.kind == "source"
    assert "AAPL" in failed.value.detail

    yahoo.clear_faults()
    assert len(source.fetch(now_utc() - timedelta(minutes=3), now_utc()).bars) >= 3


def test_a_rate_limit_is_told_apart_from_other_failures(yahoo: YahooStandIn) -> None:
    yahoo.add_fault(too_many_requests())
    with pytest.raises(FetchError) as failed:
        source_for(yahoo, ["AAPL", "MSFT"]).fetch(now_utc() - timedelta(minutes=3), now_utc())
    assert failed.value.kind == "rate_limit"
    assert {r.status for r in yahoo.chart_requests()} == {429}


def test_a_slow_chart_answer_returns_within_the_period(yahoo: YahooStandIn) -> None:
    yahoo.add_fault(slow_answer(30.0))
    started = time.monotonic()
    with pytest.raises(FetchError):
        source_for(yahoo, ["AAPL"], period_s=2.0).fetch(now_utc() - timedelta(minutes=3), now_utc())
    assert time.monotonic() - started < 2.0


def test_a_slow_handshake_is_given_up_at_the_deadline_and_fetching_resumes_after_it(
    yahoo: YahooStandIn,
) -> None:
    # yfinance waits up to 30 s for its crumb whatever timeout it is given: only the deadline bounds it.
    yahoo.add_fault(slow_answer(4.0, path_prefix=CRUMB_PATH, times=1))
    source = source_for(yahoo, ["AAPL"], period_s=1.0)

    started = time.monotonic()
    with pytest.raises(FetchError) as first:
        source.fetch(now_utc() - timedelta(minutes=3), now_utc())
    assert first.value.kind == "timeout"
    assert time.monotonic() - started < 1.0
    with pytest.raises(FetchError, match="has not returned yet"):
        source.fetch(now_utc() - timedelta(minutes=3), now_utc())

    deadline = time.monotonic() + 15
    while True:
        try:
            fetch = source.fetch(now_utc() - timedelta(minutes=3), now_utc())
            break
        except FetchError:
            assert time.monotonic() < deadline, "fetching did not resume after the slow answer"
            time.sleep(0.5)
    assert len(fetch.bars) >= 3


# --- through the producer to the broker -----------------------------------------------------------


def test_bars_from_yahoo_reach_kafka_as_v1_messages_with_revisions_and_final(
    settings_factory: Callable[..., Settings], yahoo: YahooStandIn
) -> None:
    settings = settings_factory(
        producer={"source": "yfinance", "backfill_minutes": 6},
        common={"tickers": "AAPL,MSFT", "download_period_s": 1.0},
    )
    source = source_for(yahoo, settings.shard_tickers(), period_s=1.0)
    with producer_running(settings, source):
        got = read_bars(
            settings,
            until=lambda bars: (
                _revised(bars, times=2) and {b.ticker for b in bars if not b.final} == {"AAPL", "MSFT"}
            ),
        )

    assert {b.ticker for b in got} == {"AAPL", "MSFT"}
    assert all(b.v == 1 and b.source == "yfinance" for b in got)
    latest: dict[tuple[str, datetime], BarV1] = {}
    for bar in got:
        previous = latest.get((bar.ticker, bar.ts))
        assert previous is None or bar.rev == previous.rev + 1
        assert previous is None or not previous.final  # nothing follows a final bar
        latest[(bar.ticker, bar.ts)] = bar
    finals = [b for b in got if b.final]
    assert len(finals) >= 2 * 3
    assert all(b.ts < datetime.now(UTC) - timedelta(minutes=2) for b in finals)
    for bar in finals:
        sent = yahoo.bar(bar.ticker, int(bar.ts.timestamp()), time.time())
        assert (bar.close, bar.volume) == (sent["close"], sent["volume"])
    revised = [b for b in got if b.rev > min(x.rev for x in got) and not b.final]
    assert revised, "the minute in progress was never republished with its new values"


def test_a_rate_limit_backs_off_without_a_tight_loop_and_the_producer_recovers(
    settings_factory: Callable[..., Settings], yahoo: YahooStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory(
        producer={"source": "yfinance", "backfill_minutes": 0, "fetch_backoff_max_s": 4.0},
        common={"tickers": "AAPL", "download_period_s": 1.0},
    )
    yahoo.add_fault(too_many_requests())
    caplog.set_level(logging.WARNING, logger="services.producer.app")
    with producer_running(settings, source_for(yahoo, ["AAPL"], period_s=1.0)):
        time.sleep(8.0)
        limited = len(yahoo.chart_requests("AAPL"))
        yahoo.clear_faults()
        got = read_bars(settings, until=lambda bars: len(bars) >= 2, timeout=30)

    assert got and {b.ticker for b in got} == {"AAPL"}
    failures = [r for r in caplog.records if r.getMessage().startswith("fetch failed (rate_limit)")]
    # A cycle every second would be 8 failed cycles; the backoff doubles from the period up to 4 s.
    assert 2 <= len(failures) <= 6, [r.getMessage() for r in failures]
    delays = [float(cast("tuple[str, float, int, str]", r.args)[1]) for r in failures]
    assert delays[0] <= 1.0 and max(delays) >= 2.0, delays
    for earlier, later, delay in zip(failures, failures[1:], delays, strict=False):
        assert later.created - earlier.created >= delay * 0.9  # it really waited
    assert limited <= 4 * len(failures)  # yfinance's own retry: two chart requests per cycle at most doubled


def test_a_delisted_symbol_is_reported_once_and_the_others_go_on(
    settings_factory: Callable[..., Settings], yahoo: YahooStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory(
        producer={"source": "yfinance", "backfill_minutes": 0},
        common={"tickers": "AAPL,NOPE", "download_period_s": 0.5},
    )
    yahoo.delist("NOPE")
    caplog.set_level(logging.INFO)
    with producer_running(settings, source_for(yahoo, ["AAPL", "NOPE"], period_s=0.5)):
        got = read_bars(settings, until=lambda bars: _revised(bars, times=4))

    assert got and {b.ticker for b in got} == {"AAPL"}
    cycles = [r for r in yahoo.chart_requests("AAPL") if r.query.get("interval") == "1m"]
    assert len(cycles) >= 4  # NOPE failed in each of these downloads (yfinance caches Yahoo's 404)...
    reports = [
        r.getMessage() for r in caplog.records if "NOPE" in r.getMessage() and r.levelno >= logging.INFO
    ]
    assert len(reports) == 1, reports  # ...and was reported once
    assert "delisted" in reports[0]


def test_a_slow_ticker_never_holds_the_cycle_past_the_period(
    settings_factory: Callable[..., Settings], yahoo: YahooStandIn
) -> None:
    settings = settings_factory(
        producer={"source": "yfinance", "backfill_minutes": 0},
        common={"tickers": "AAPL,MSFT", "download_period_s": 2.0},
    )
    yahoo.add_fault(slow_answer(60.0))
    yahoo.config.faults[-1].symbols = frozenset({"AAPL"})
    started = time.monotonic()
    with producer_running(settings, source_for(yahoo, ["AAPL", "MSFT"], period_s=2.0)):
        got = read_bars(settings, until=lambda bars: len(bars) >= 3, timeout=30)
        elapsed = time.monotonic() - started

    # Three cycles' bars in well under one slow answer: each cycle gave up on AAPL within its period.
    assert {b.ticker for b in got} == {"MSFT"}
    assert elapsed < 20, elapsed


def _revised(bars: list[BarV1], times: int) -> bool:
    """Whether some bar was republished ``times`` times (one more cycle each)."""
    return bool(bars) and max(b.rev for b in bars) - min(b.rev for b in bars) >= times
