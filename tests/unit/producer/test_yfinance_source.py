"""The yfinance adapter against frames in yfinance 1.7's real shapes, injected at the download boundary.

The frames are assembled with yfinance's own code (``multi.reindex_dfs``, ``utils.empty_df``) the way
``yfinance.download`` does it: per-ticker ``history()`` frames (Open, High, Low, Close, Volume with
``auto_adjust=True``, tz-aware exchange-time index named Datetime), reindexed to the union of timestamps,
concatenated under (Ticker, Price) and swapped to (Price, Ticker), sorted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from yfinance import multi as yf_multi
from yfinance import utils as yf_utils
from yfinance.exceptions import YFRateLimitError

from services.producer.cycle import prepare
from services.producer.revisions import RevisionTracker
from services.producer.sources.base import FetchError
from services.producer.sources.yfinance_source import YFinanceSource, frame_to_bars

NY = "America/New_York"
NOW = datetime(2026, 11, 25, 14, 35, 20, tzinfo=UTC)  # 09:35:20 in New York


def history(minutes: list[str], closes: list[float], tz: str = NY) -> pd.DataFrame:
    """One ticker's ``Ticker.history(interval="1m", auto_adjust=True)`` frame."""
    index = pd.DatetimeIndex(pd.to_datetime(minutes)).tz_localize(tz)
    index.name = "Datetime"
    close = np.array(closes, dtype=float)
    return pd.DataFrame(
        {
            "Open": close - 0.1,
            "High": close + 0.2,
            "Low": close - 0.3,
            "Close": close,
            "Volume": np.arange(1, len(close) + 1, dtype=np.int64) * 100,
        },
        index=index,
    )


def download_frame(dfs: dict[str, pd.DataFrame], multi_level_index: bool = True) -> pd.DataFrame:
    """What ``yfinance.download(..., group_by="column")`` builds from per-ticker frames."""
    dfs = yf_multi.reindex_dfs(dict(dfs), ignore_tz=False)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    data = data.sort_index(level=0, axis=1)
    if not multi_level_index and len(dfs) == 1:
        data = data.droplevel(1, axis=1).rename_axis(None, axis=1)
    return data


class FakeDownload:
    def __init__(self, frame: pd.DataFrame | None = None, error: Exception | None = None) -> None:
        self.frame = frame
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.log: list[str] = []

    def __call__(self, **kwargs: Any) -> pd.DataFrame | None:
        self.calls.append(kwargs)
        for message in self.log:
            logging.getLogger("yfinance").error(message)
        if self.error:
            raise self.error
        return self.frame


def test_several_tickers_multiindex_in_new_york_time_become_utc_rows_without_nan_holes() -> None:
    frame = download_frame(
        {
            "AAPL": history(["2026-11-25 09:33", "2026-11-25 09:34", "2026-11-25 09:35"], [10, 11, 12]),
            # No trade at 09:34: a NaN hole after the reindex to the union of timestamps.
            "MSFT": history(["2026-11-25 09:33", "2026-11-25 09:35"], [20, 21]),
        }
    )
    assert list(frame.columns.names) == ["Price", "Ticker"]
    assert frame["Close"]["MSFT"].isna().sum() == 1

    bars = frame_to_bars(frame, ["AAPL", "MSFT"])

    assert bars[["ticker", "close"]].to_numpy().tolist() == [
        ["AAPL", 10.0],
        ["AAPL", 11.0],
        ["AAPL", 12.0],
        ["MSFT", 20.0],
        ["MSFT", 21.0],
    ]
    assert str(bars["ts"].dt.tz) == "UTC"
    assert bars["ts"].iloc[0] == pd.Timestamp("2026-11-25 14:33", tz="UTC")
    assert not bars.isna().any().any()


@pytest.mark.parametrize("multi_level_index", [True, False])
def test_one_ticker_with_multiindex_or_flat_columns(multi_level_index: bool) -> None:
    frame = download_frame(
        {"AAPL": history(["2026-11-25 09:33", "2026-11-25 09:34"], [10, 11])}, multi_level_index
    )
    assert isinstance(frame.columns, pd.MultiIndex) == multi_level_index
    bars = frame_to_bars(frame, ["AAPL"])
    assert bars["ticker"].tolist() == ["AAPL", "AAPL"]
    assert bars["close"].tolist() == [10.0, 11.0]


def test_a_timezone_other_than_new_york_is_converted_to_utc() -> None:
    frame = download_frame({"SAP.DE": history(["2026-11-25 09:00"], [150], tz="Europe/Berlin")})
    bars = frame_to_bars(frame, ["SAP.DE"])
    assert bars["ts"].tolist() == [pd.Timestamp("2026-11-25 08:00", tz="UTC")]


def test_a_failed_ticker_is_reported_and_the_others_published() -> None:
    frame = download_frame({"AAPL": history(["2026-11-25 09:34"], [10]), "NOPE": yf_utils.empty_df()})
    download = FakeDownload(frame)
    # How yfinance.download reports it: a log line, no exception.
    download.log = ["['NOPE']: YFTzMissingError('$NOPE: possibly delisted; no timezone found')"]
    source = YFinanceSource(["AAPL", "NOPE"], download=download)

    fetch = source.fetch(NOW - timedelta(minutes=2), NOW)

    assert fetch.bars["ticker"].tolist() == ["AAPL"]
    assert set(fetch.errors) == {"NOPE"}
    assert "no timezone found" in fetch.errors["NOPE"]
    assert not fetch.rate_limited


def test_an_empty_frame_publishes_nothing_and_is_not_an_error() -> None:
    source = YFinanceSource(["AAPL"], download=FakeDownload(pd.DataFrame()))
    fetch = source.fetch(NOW - timedelta(minutes=2), NOW)
    assert fetch.bars.empty
    assert fetch.errors == {}
    assert frame_to_bars(None, ["AAPL"]).empty
    assert frame_to_bars(download_frame({"AAPL": yf_utils.empty_df()}), ["AAPL"]).empty


def test_a_raised_rate_limit_error_becomes_a_rate_limit_fetch_error() -> None:
    source = YFinanceSource(["AAPL"], download=FakeDownload(error=YFRateLimitError()))
    with pytest.raises(FetchError) as caught:
        source.fetch(NOW - timedelta(minutes=2), NOW)
    assert caught.value.kind == "rate_limit"


def test_a_network_error_becomes_a_network_fetch_error() -> None:
    source = YFinanceSource(["AAPL"], download=FakeDownload(error=ConnectionError("connection reset")))
    with pytest.raises(FetchError) as caught:
        source.fetch(NOW - timedelta(minutes=2), NOW)
    assert caught.value.kind == "network"


def test_a_rate_limit_only_logged_by_yfinance_is_noticed() -> None:
    frame = download_frame({"AAPL": yf_utils.empty_df(), "MSFT": yf_utils.empty_df()})
    download = FakeDownload(frame)
    download.log = [
        "['AAPL', 'MSFT']: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"
    ]
    source = YFinanceSource(["AAPL", "MSFT"], download=download)
    with pytest.raises(FetchError) as caught:
        source.fetch(NOW - timedelta(minutes=2), NOW)
    assert caught.value.kind == "rate_limit"

    partial = download_frame({"AAPL": history(["2026-11-25 09:34"], [10]), "MSFT": yf_utils.empty_df()})
    download = FakeDownload(partial)
    download.log = ["['MSFT']: YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')"]
    fetch = YFinanceSource(["AAPL", "MSFT"], download=download).fetch(NOW - timedelta(minutes=2), NOW)
    assert fetch.rate_limited
    assert fetch.bars["ticker"].tolist() == ["AAPL"]


def test_one_batched_1m_request_per_cycle_from_the_first_missing_minute() -> None:
    download = FakeDownload(pd.DataFrame())
    YFinanceSource(["AAPL", "MSFT"], download=download).fetch(NOW - timedelta(minutes=3, seconds=20), NOW)
    (call,) = download.calls
    assert call["tickers"] == ["AAPL", "MSFT"]
    assert call["interval"] == "1m"
    assert call["start"] == datetime(2026, 11, 25, 14, 32, tzinfo=UTC)
    assert call["end"] is None
    assert call["auto_adjust"] is True


def test_backfill_is_split_into_requests_of_at_most_a_week_within_30_days() -> None:
    download = FakeDownload(pd.DataFrame())
    source = YFinanceSource(["AAPL"], download=download)
    chunks = list(source.backfill(60 * 24 * 40, NOW))  # 40 days asked: only ~30 exist
    assert len(chunks) == len(download.calls) == 5
    starts = [call["start"] for call in download.calls]
    assert starts[0] >= NOW - timedelta(days=30)
    ends = [call["end"] or NOW for call in download.calls]
    assert all(end - start <= timedelta(days=8) for start, end in zip(starts, ends, strict=True))
    assert download.calls[-1]["end"] is None  # the last request runs up to now


def test_the_last_minutes_are_in_progress_and_the_rest_final() -> None:
    frame = download_frame(
        {
            "AAPL": history(
                ["2026-11-25 09:31", "2026-11-25 09:32", "2026-11-25 09:33", "2026-11-25 09:35"], [1, 2, 3, 4]
            )
        }
    )
    fetch = YFinanceSource(["AAPL"], download=FakeDownload(frame)).fetch(NOW - timedelta(minutes=5), NOW)
    prepared = prepare(fetch.bars, fetch.closed_before, RevisionTracker(), "yfinance")
    # Yahoo adds minutes up to ~90 s late: 14:33 (two minutes before 14:35:20) is the first still open.
    assert fetch.closed_before == datetime(2026, 11, 25, 14, 33, tzinfo=UTC)
    assert prepared.final == 2
    assert len(prepared.messages) == 4


def test_a_partly_missing_row_is_left_for_validation_to_reject() -> None:
    frame = download_frame({"AAPL": history(["2026-11-25 09:33", "2026-11-25 09:34"], [10, 11])})
    frame.loc[frame.index[1], ("High", "AAPL")] = math.nan
    fetch = YFinanceSource(["AAPL"], download=FakeDownload(frame)).fetch(NOW - timedelta(minutes=5), NOW)
    prepared = prepare(fetch.bars, fetch.closed_before, RevisionTracker(), "yfinance")
    assert len(prepared.messages) == 1
    assert [row.reason for row in prepared.invalid] == ["missing_value"]


class StalledDownload(FakeDownload):
    """A download that does not return until released: Yahoo sitting on a request."""

    def __init__(self) -> None:
        super().__init__(download_frame({"AAPL": history(["2026-11-25 09:34"], [10])}))
        self.release = threading.Event()

    def __call__(self, **kwargs: Any) -> pd.DataFrame | None:
        self.release.wait(10)
        return super().__call__(**kwargs)


def test_a_live_fetch_is_given_up_at_its_deadline_and_no_second_request_piles_on() -> None:
    download = StalledDownload()
    source = YFinanceSource(["AAPL"], download=download, period_s=0.5)
    started = time.monotonic()
    with pytest.raises(FetchError) as first:
        source.fetch(NOW - timedelta(minutes=2), NOW)
    assert first.value.kind == "timeout"
    assert time.monotonic() - started < 0.5
    with pytest.raises(FetchError, match="has not returned yet"):
        source.fetch(NOW - timedelta(minutes=2), NOW)
    assert len(download.calls) == 0  # the first is still waiting; the second never started

    download.release.set()
    deadline = time.monotonic() + 5
    while source._in_flight is not None and source._in_flight.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.fetch(NOW - timedelta(minutes=2), NOW).bars["ticker"].tolist() == ["AAPL"]
    assert download.calls[-1]["timeout"] == 0.25  # the HTTP timeout: half the period


def test_the_http_timeout_is_at_most_20_s_and_a_backfill_is_not_held_to_the_period() -> None:
    download = FakeDownload(pd.DataFrame())
    source = YFinanceSource(["AAPL"], download=download, period_s=300)
    source.fetch(NOW - timedelta(minutes=2), NOW)
    list(source.backfill(30, NOW))
    assert [call["timeout"] for call in download.calls] == [20.0, 20.0]
