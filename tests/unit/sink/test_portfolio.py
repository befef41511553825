from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sink.portfolio import CloseV1, _merge_closes, _Rows, _settle_rows
from testkit.bars import T0

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def close(ticker: str, minute: int, rev: int = 0) -> CloseV1:
    return CloseV1(ticker=ticker, ts=T0 + timedelta(minutes=minute), close=100.0 + minute, rev=rev)


def merge(
    state: _Rows, closes: list[CloseV1], untouched_since: datetime | None = NOW - timedelta(hours=1)
) -> dict[datetime, dict[str, tuple[float, int]]]:
    settle: dict[datetime, dict[str, tuple[float, int]]] = {}
    _merge_closes(state, closes, settle, NOW)
    _settle_rows(state, settle, untouched_since)
    return settle


def test_an_incomplete_row_settles_once_untouched_long_enough_or_on_a_stop() -> None:
    state = _Rows()
    merge(state, [close("A", 0), close("B", 0)])
    assert merge(state, [close("A", 1)]) == {}
    assert merge(state, [], untouched_since=NOW - timedelta(seconds=1)) == {}
    assert set(merge(state, [], untouched_since=NOW)) == {T0 + timedelta(minutes=1)}
    merge(state, [close("A", 2)])
    assert set(merge(_Rows.of(state.document(0), state.open_documents(0)), [], untouched_since=None)) == {
        T0 + timedelta(minutes=2)
    }


def test_a_row_holding_every_ticker_seen_settles_at_once_and_one_lacking_a_ticker_waits() -> None:
    state = _Rows()
    assert set(merge(state, [close("A", 0), close("B", 0)])) == {T0}
    assert merge(state, [close("A", 1)]) == {}  # B was seen: the row waits for it
    assert set(merge(state, [close("B", 1)])) == {T0 + timedelta(minutes=1)}
    assert not state.open


def test_a_close_for_a_settled_row_goes_to_the_stored_row_and_the_ticker_set_survives_the_document() -> None:
    state = _Rows()
    merge(state, [close("A", 0), close("B", 0)])
    assert merge(state, [close("A", 0, rev=5)]) == {T0: {"A": (100.0, 5)}}
    again = _Rows.of(state.document(0), state.open_documents(0))
    assert again.tickers == state.tickers and again.settled == state.settled
    assert merge(again, [close("A", 2)]) == {}
