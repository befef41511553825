from __future__ import annotations

from datetime import datetime, timedelta

from services.sink.portfolio import CloseV1, _merge_closes, _Rows
from testkit.bars import T0


def close(ticker: str, minute: int, rev: int = 0) -> CloseV1:
    return CloseV1(ticker=ticker, ts=T0 + timedelta(minutes=minute), close=100.0 + minute, rev=rev)


def merge(state: _Rows, closes: list[CloseV1]) -> dict[datetime, dict[str, tuple[float, int]]]:
    settle: dict[datetime, dict[str, tuple[float, int]]] = {}
    _merge_closes(state, closes, settle)
    return settle


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
    again = _Rows.of(state.document(0))
    assert again.tickers == state.tickers and again.settled == state.settled
    assert merge(again, [close("A", 2)]) == {}
