"""The dashboard's in-memory window: revisions, horizons as part of a forecast's identity, trimming, and the
span it can answer for."""

from __future__ import annotations

from datetime import timedelta

from services.dashboard.series import MinuteSeries
from services.dashboard.window import Window
from shared.settings import PORTFOLIO_SERIES
from testkit.bars import T0, bar_at, forecast, synthetic_bar


def test_an_older_revision_does_not_replace_a_newer_one() -> None:
    window = Window(history=100)
    assert window.add_bar(bar_at("AAA", 0, rev=2, final=True))
    assert not window.add_bar(bar_at("AAA", 0, rev=1))
    [bar] = window.bars("AAA", T0, T0)
    assert bar["final"] is True


def test_forecasts_of_one_minute_at_several_horizons_are_all_held() -> None:
    window = Window(history=100)
    for horizon in (1, 5, 15, 30):
        window.add_prediction(forecast("AAA", 30 - horizon, horizon))
    target = T0 + timedelta(minutes=30)
    held = window.predictions("AAA", target, target)
    assert [(p["horizon_min"], p["based_on_ts"]) for p in held] == [
        (h, target - timedelta(minutes=h)) for h in (1, 5, 15, 30)
    ]
    assert [p["horizon_min"] for p in window.predictions("AAA", target, target, horizon=15)] == [15]


def test_the_window_keeps_the_newest_history_and_hands_older_spans_back() -> None:
    window = Window(history=10)
    window.loaded_from(None)
    for minute in range(100):
        window.add_bar(bar_at("AAA", minute))
        window.add_prediction(forecast("AAA", minute, 1))
    counts = window.counts()
    assert 10 <= counts["bars"] <= 20 and counts["predictions"] <= 21
    assert window.newest("AAA") == T0 + timedelta(minutes=99)
    assert window.holds_since("AAA", T0 + timedelta(minutes=95))
    assert not window.holds_since("AAA", T0)


def test_a_late_minute_is_inserted_in_order() -> None:
    series = MinuteSeries({"close": "d"})
    for minute in (1, 3, 2):
        series.put(minute, (float(minute),))
    series.put(3, (30.0,))
    assert list(series.rows(0, 10)) == [(1, (1.0,)), (2, (2.0,)), (3, (30.0,))]


def test_the_portfolio_merges_every_ticker_by_minute() -> None:
    window = Window(history=100)
    window.add_bar(bar_at("AAA", 0))
    window.add_bar(bar_at("BBB", 0))
    window.add_bar(bar_at("BBB", 1, final=False))
    rows = window.portfolio(T0, T0 + timedelta(minutes=1))
    assert rows == [
        {"ts": T0, "close": {"AAA": 100.0, "BBB": 100.0}},
        {"ts": T0 + timedelta(minutes=1), "close": {"BBB": 100.1}},
    ]


def test_the_portfolio_spans_the_newest_trading_minutes_across_a_weekend() -> None:
    window = Window(history=1_000)
    friday = [T0 - timedelta(days=3) + timedelta(minutes=m) for m in range(390)]
    for ts in friday:
        window.add_bar(synthetic_bar("AAA", ts, 100.0, final=True))
    for minute in range(60):
        window.add_bar(bar_at("AAA", minute))
    window.add_bar(bar_at("BBB", 59))
    newest = window.newest_of_all()
    assert newest == T0 + timedelta(minutes=59)
    since = newest - timedelta(days=5)
    rows = window.portfolio(since, newest, last=100)
    assert [r["ts"] for r in rows] == [*friday[-40:], *(T0 + timedelta(minutes=m) for m in range(60))]
    assert rows[-1]["close"] == {"AAA": 105.9, "BBB": 105.9}
    assert [b["ts"] for b in window.bars("AAA", since, newest, last=2)] == [rows[-2]["ts"], rows[-1]["ts"]]


def test_the_portfolio_series_has_forecasts_and_is_no_ticker() -> None:
    window = Window(history=100)
    window.add_bar(bar_at("AAA", 0))
    window.add_prediction(forecast("AAA", 0, 5).model_copy(update={"ticker": PORTFOLIO_SERIES}))
    assert [t for t, _ in window.tickers()] == ["AAA"]
    [held] = window.predictions(PORTFOLIO_SERIES, T0, T0 + timedelta(minutes=5))
    assert held["horizon_min"] == 5 and held["yhat"] == 101.0
