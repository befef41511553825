from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from services.producer.cycle import prepare
from services.producer.revisions import RevisionTracker, restart_safe_rev_base
from shared.schemas import decode_bar

T0 = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)


def bars(*rows: tuple[str, datetime, float, float, float, float, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ticker", "ts", "open", "high", "low", "close", "volume"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def test_a_new_minute_is_published_with_rev_zero() -> None:
    tracker = RevisionTracker()
    (pub,) = tracker.changes(bars(("AAPL", T0, 10, 11, 9, 10.5, 100)), closed_before=T0)
    assert (pub.ticker, pub.ts, pub.close, pub.rev, pub.final) == ("AAPL", T0, 10.5, 0, False)


def test_revised_close_is_republished_with_a_higher_rev() -> None:
    tracker = RevisionTracker()
    tracker.changes(bars(("AAPL", T0, 10, 11, 9, 10.5, 100)), closed_before=T0)
    (pub,) = tracker.changes(bars(("AAPL", T0, 10, 11, 9, 10.7, 150)), closed_before=T0)
    assert (pub.close, pub.volume, pub.rev) == (10.7, 150, 1)
    (again,) = tracker.changes(bars(("AAPL", T0, 10, 11.5, 9, 11.2, 180)), closed_before=T0)
    assert again.rev == 2


def test_an_unchanged_minute_is_not_republished() -> None:
    tracker = RevisionTracker()
    row = ("AAPL", T0, 10, 11, 9, 10.5, 100)
    tracker.changes(bars(row), closed_before=T0 + timedelta(minutes=1))
    assert tracker.changes(bars(row), closed_before=T0 + timedelta(minutes=1)) == []


def test_a_minute_that_closes_is_republished_once_as_final() -> None:
    tracker = RevisionTracker()
    row = ("AAPL", T0, 10, 11, 9, 10.5, 100)
    tracker.changes(bars(row), closed_before=T0)
    (pub,) = tracker.changes(bars(row), closed_before=T0 + timedelta(minutes=1))
    assert (pub.rev, pub.final) == (1, True)
    assert tracker.changes(bars(row), closed_before=T0 + timedelta(minutes=2)) == []
    # A final bar seen again as in progress (a source's clock behind ours) does not lose final.
    (late,) = tracker.changes(bars(("AAPL", T0, 10, 11, 9, 10.6, 120)), closed_before=T0)
    assert (late.rev, late.final) == (2, True)


def test_minutes_before_the_fetch_window_are_forgotten_and_ignored() -> None:
    tracker = RevisionTracker()
    old, new = T0, T0 + timedelta(minutes=5)
    tracker.changes(bars(("AAPL", old, 10, 11, 9, 10.5, 100), ("AAPL", new, 10, 11, 9, 10.5, 100)), new)
    assert len(tracker) == 2
    tracker.forget_before(new)
    assert len(tracker) == 1
    assert tracker.changes(bars(("AAPL", old, 10, 11, 9, 10.9, 100)), new) == []


def test_oldest_open_is_the_earliest_minute_not_yet_final() -> None:
    tracker = RevisionTracker()
    assert tracker.oldest_open() is None
    later = T0 + timedelta(minutes=1)
    tracker.changes(bars(("AAPL", T0, 10, 11, 9, 10, 1), ("MSFT", later, 10, 11, 9, 10, 1)), T0)
    assert tracker.oldest_open() == T0


def test_prepare_encodes_v1_bars_keyed_by_ticker_and_skips_invalid_rows() -> None:
    tracker = RevisionTracker()
    frame = bars(("AAPL", T0, 10, 11, 9, 10.5, 100), ("MSFT", T0, 10, 11, 9, 12.0, 100))
    prepared = prepare(frame, T0 + timedelta(minutes=1), tracker, "synthetic")
    assert [key for key, _ in prepared.messages] == ["AAPL"]
    assert [row.reason for row in prepared.invalid] == ["close_outside_range"]
    bar = decode_bar(prepared.messages[0][1])
    assert (bar.ticker, bar.ts, bar.close, bar.volume, bar.source, bar.rev, bar.final) == (
        "AAPL",
        T0,
        10.5,
        100,
        "synthetic",
        0,
        True,
    )
    assert (prepared.new, prepared.revisions, prepared.final) == (1, 0, 1)


def test_a_restarted_producer_outranks_every_revision_of_the_one_before() -> None:
    start = datetime(2026, 11, 25, 14, 31, 5, tzinfo=UTC)
    before = RevisionTracker(restart_safe_rev_base(start))
    row = ("AAPL", T0, 10, 11, 9, 10.5, 100)
    last = None
    for close in (10.5, 10.6, 10.7, 10.8):  # the minute in progress, revised a few times
        (last,) = before.changes(bars((*row[:5], close, 100)), closed_before=T0)
    after = RevisionTracker(restart_safe_rev_base(start + timedelta(milliseconds=1)))
    (first,) = after.changes(bars((*row[:5], 10.9, 120)), closed_before=T0 + timedelta(minutes=1))
    assert last is not None
    assert first.rev > last.rev
    assert first.final
    assert first.rev < 2**53  # exact as a JSON number everywhere


def test_cycle_counts_first_publications_as_new_whatever_the_rev_base() -> None:
    from datetime import UTC, datetime

    import pandas as pd

    from services.producer.cycle import prepare
    from services.producer.revisions import RevisionTracker

    ts = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    bars = pd.DataFrame(
        {
            "ticker": ["AAPL"],
            "ts": [ts],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [5],
        }
    )
    tracker = RevisionTracker(rev_base=1_700_000_000_000_000)
    first = prepare(bars, ts, tracker, "synthetic")
    assert (first.new, first.revisions) == (1, 0)
    again = prepare(bars.assign(close=1.01, high=1.01), ts, tracker, "synthetic")
    assert (again.new, again.revisions) == (0, 1)
