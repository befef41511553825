"""The read API's query checks: what each accepts, and errors that never repeat the input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dashboard import queries
from services.dashboard.queries import QueryError
from shared.settings import PORTFOLIO_SERIES


@pytest.mark.parametrize(
    "params",
    [
        {"ticker": "A" * 5000},
        {"ticker": "<script>"},
        {"ticker": ""},
        {"ticker": "BRK.B"},
    ],
)
def test_a_bad_ticker_is_refused_without_echoing_it(params: dict[str, str]) -> None:
    with pytest.raises(QueryError) as error:
        queries.ticker(params)
    assert error.value.status == 400
    assert params["ticker"] not in error.value.detail or not params["ticker"]


@pytest.mark.parametrize("minutes", ["abc", "-5", "0", "1.5", " 5", "1_000", "²", "99999999"])
def test_minutes_must_be_a_whole_number_in_range(minutes: str) -> None:
    with pytest.raises(QueryError, match="minutes: a whole number"):
        queries.span({"minutes": minutes})


def test_minutes_end_at_the_newest_bar_not_at_the_clock() -> None:
    newest = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
    since, until = queries.span({"minutes": "120"}).bounds(newest)
    assert (since, until) == (newest - timedelta(minutes=119), newest)
    assert queries.span({}).minutes == queries.DEFAULT_MINUTES


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "2026-11-25T14:31:00"},
        {"since": "9" * 5000},
        {"since": "2026-11-25T15:00:00Z", "until": "2026-11-25T14:00:00Z"},
        {"since": "2026-11-25T14:00:00Z", "minutes": "5"},
    ],
)
def test_bad_times_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        queries.span(params)


def test_times_are_read_in_any_offset_and_kept_in_utc() -> None:
    span = queries.span({"since": "2026-11-25T09:31:00-05:00", "until": "2026-11-25T14:40:00Z"})
    assert span.since == datetime(2026, 11, 25, 14, 31, tzinfo=UTC)


def test_the_portfolio_series_is_a_name_only_where_a_series_is_asked_for() -> None:
    assert queries.ticker({"ticker": "_PORTFOLIO"}, series=True) == PORTFOLIO_SERIES
    assert queries.ticker({"ticker": "aapl"}, series=True) == "AAPL"
    for params, series in (({"ticker": "_PORTFOLIO"}, False), ({"ticker": "_portfolio"}, True)):
        with pytest.raises(QueryError):
            queries.ticker(params, series)
    with pytest.raises(QueryError):
        queries.ticker({"ticker": "_OTHER"}, series=True)


@pytest.mark.parametrize("last", ["0", "-1", "x", "39001"])
def test_last_is_a_whole_number_in_range(last: str) -> None:
    assert queries.last({}) is None and queries.last({"last": "390"}) == 390
    with pytest.raises(QueryError, match="last: a whole number"):
        queries.last({"last": last})
