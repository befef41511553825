"""A recording as a new user brings it: CRLF, a byte-order mark, shuffled rows, duplicates and bad rows.
The good rows are replayed; each bad one is skipped with its reason and line; only a file with nothing
usable is refused, in our words."""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from services.producer.cycle import prepare
from services.producer.revisions import RevisionTracker
from services.producer.sources import make_source
from services.producer.sources.recording import RecordingError, read_recording
from services.producer.sources.replay import ReplaySource
from shared.settings import SettingsError
from tests.conftest import make_settings

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
HEADER = "Datetime,Symbol,Open,High,Low,Close,Volume"


def good_line(minute: int, ticker: str, close: float = 0.0) -> str:
    price = close or 100.0 + minute
    ts = (T0 + timedelta(minutes=minute)).isoformat()
    return f"{ts},{ticker},{price},{price + 1},{price - 1},{price},{1000 + minute}"


@pytest.fixture
def no_warnings() -> Iterator[None]:
    # Any warning numpy or pandas would print on the user's terminal fails the test instead.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def write(path: Path, lines: list[str], *, bom: bool = True, newline: str = "\r\n") -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + newline.join(lines).encode() + newline.encode())
    return path


def hostile_recording(path: Path) -> tuple[Path, dict[str, list[int]]]:
    """20 minutes × AAPL, MSFT shuffled, then bad rows appended; returns the bad rows' lines by reason."""
    good = [good_line(m, t) for m in range(20) for t in ("AAPL", "MSFT")]
    random.Random(7).shuffle(good)
    bad = {
        "time_out_of_range": "2300-01-01T00:00:00Z,AAPL,1,2,0.5,1,10",
        "unreadable_time": "yesterday at noon,AAPL,1,2,0.5,1,10",
        "too_many_fields": good_line(3, "AAPL") + ",extra,fields",
        "too_few_fields": "2026-11-20T14:40:00Z,AAPL,1,2",
        "empty_ticker": (T0 + timedelta(minutes=21)).isoformat() + ", ,1,2,0.5,1,10",
        "duplicate": good_line(5, "MSFT"),  # the same values again: the earlier copy goes
    }
    # Other values for a minute already in the file: the earlier row goes.
    lines = [HEADER, *good, *bad.values(), good_line(6, "AAPL", close=150.0)]
    # Value problems: kept by the reader, rejected by validation with their own reasons.
    lines += [
        good_line(30, "AAPL").rsplit(",", 1)[0] + ",1e30",
        (T0 + timedelta(minutes=31)).isoformat() + ",AAPL,ten,2,0.5,1,10",
        (T0 + timedelta(minutes=32)).isoformat() + ",AAPL,inf,2,0.5,1,10",
        (T0 + timedelta(minutes=33)).isoformat() + ",AAPL,NaN,2,0.5,1,10",
    ]
    first_bad_line = 2 + len(good)
    lines_by_reason = {reason: [first_bad_line + i] for i, reason in enumerate(bad)}
    lines_by_reason["duplicate"] = [2 + good.index(good_line(5, "MSFT"))]
    lines_by_reason["conflicting_duplicate"] = [2 + good.index(good_line(6, "AAPL"))]
    return write(path, lines), lines_by_reason


def test_a_hostile_recording_replays_its_good_rows_and_names_each_bad_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, no_warnings: None
) -> None:
    path, bad_lines = hostile_recording(tmp_path / "hostile.csv")
    caplog.set_level(logging.WARNING)

    bars, skipped = read_recording(path, ["AAPL", "MSFT"])

    assert dict(skipped.counts) == dict.fromkeys(bad_lines, 1)
    assert skipped.lines == bad_lines
    for reason, (line,) in bad_lines.items():
        assert any(
            f"rows skipped ({reason}), at line {line}" in r.getMessage() and str(path) in r.getMessage()
            for r in caplog.records
        ), reason
    # 40 good rows + the 4 value problems, one row per ticker and minute, in time order.
    assert len(bars) == 44
    assert not bars.duplicated(["ticker", "ts"]).any()
    assert bars["ts"].is_monotonic_increasing
    assert str(bars["ts"].dt.tz) == "UTC"
    winner = bars[(bars["ticker"] == "AAPL") & (bars["ts"] == pd.Timestamp(T0 + timedelta(minutes=6)))]
    assert winner["close"].tolist() == [150.0]  # the later row of a conflicting pair


def test_value_problems_are_skipped_with_their_reasons_and_without_numpy_warnings(
    tmp_path: Path, no_warnings: None
) -> None:
    path, _ = hostile_recording(tmp_path / "hostile.csv")
    source = ReplaySource(path, ["AAPL", "MSFT"], speed=0)
    tracker = RevisionTracker()
    prepared = [prepare(f.bars, f.closed_before, tracker, "replay") for f in source.backfill(100, T0)]

    assert sum(len(p.messages) for p in prepared) == 40
    reasons = sorted(row.reason for p in prepared for row in p.invalid)
    assert reasons == ["missing_value", "missing_value", "non_finite_price", "volume_out_of_range"]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize("bom", [True, False])
def test_line_endings_and_a_byte_order_mark_make_no_difference(
    tmp_path: Path, newline: str, bom: bool, no_warnings: None
) -> None:
    lines = [HEADER, *[good_line(m, "AAPL") for m in range(5)]]
    bars, skipped = read_recording(write(tmp_path / "b.csv", lines, bom=bom, newline=newline), ["AAPL"])
    assert len(bars) == 5
    assert skipped.counts == {}
    assert bars["ticker"].tolist() == ["AAPL"] * 5


def test_a_parquet_recording_skips_rows_the_same_way_by_row_number(tmp_path: Path, no_warnings: None) -> None:
    frame = pd.DataFrame(
        {
            "ticker": ["AAPL", "", "AAPL", "AAPL"],
            "ts": ["2026-11-20T14:30:00Z", "2026-11-20T14:31:00Z", "2300-01-01", "2026-11-20T14:32:00Z"],
            "open": [1.0, 1.0, 1.0, 1.0],
            "high": [2.0, 2.0, 2.0, 2.0],
            "low": [0.5, 0.5, 0.5, 0.5],
            "close": [1.0, 1.0, 1.0, 1.0],
            "volume": [10, 10, 10, 10],
        }
    )
    frame.to_parquet(tmp_path / "b.parquet")
    bars, skipped = read_recording(tmp_path / "b.parquet", ["AAPL"])
    assert len(bars) == 2
    assert skipped.lines == {"empty_ticker": [2], "time_out_of_range": [3]}
    assert skipped.where == "row"


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([HEADER, "2300-01-01T00:00:00Z,AAPL,1,2,0.5,1,10", "never,AAPL,1,2,0.5,1,10"], "no usable rows"),
        ([HEADER], "no usable rows"),
        ([HEADER, good_line(0, "MSFT")], "no usable rows for AAPL"),
        (["ticker,price", "AAPL,1"], "no column for ts, open, high, low, close, volume"),
        ([], "the file is empty"),
    ],
    ids=["only-bad-rows", "header-only", "other-tickers", "missing-columns", "empty"],
)
def test_a_file_with_nothing_usable_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, lines: list[str], problem: str
) -> None:
    path = write(tmp_path / "bad.csv", lines)
    with pytest.raises(RecordingError, match=problem) as refused:
        read_recording(path, ["AAPL"])
    assert str(path) in str(refused.value)


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(b"ticker,ts\n\xff\xfe\x00garbage")
    with pytest.raises(RecordingError, match="not UTF-8 text"):
        read_recording(path, ["AAPL"])


def test_the_producer_refuses_an_unusable_recording_as_a_bad_setting(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", [HEADER, "2300-01-01T00:00:00Z,AAPL,1,2,0.5,1,10"])
    settings = make_settings(producer={"source": "replay", "replay_file": path}, common={"tickers": "AAPL"})
    with pytest.raises(SettingsError, match=r"PORTFOLIO_REPLAY_FILE.*no usable rows.*1 time_out_of_range"):
        make_source(settings, ["AAPL"])
