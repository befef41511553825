from __future__ import annotations

import math
from datetime import timedelta

from services.sink.writes import (
    StoredBar,
    bar_document,
    latest_bars,
    latest_predictions,
    plan_bar_conflicts,
    plan_prediction_conflicts,
    portfolio_rows,
    portfolio_set,
    prediction_document,
)
from shared.schemas import BarV1, PredictionV1
from tests.integration.sink_support import T0, bar


def test_highest_revision_per_minute_is_kept_and_older_ones_counted() -> None:
    latest = latest_bars(
        [bar("AAPL", 0, rev=1), bar("AAPL", 0, rev=3), bar("AAPL", 0, rev=2), bar("MSFT", 0)]
    )
    assert sorted((b.ticker, b.rev) for b in latest.items) == [("AAPL", 3), ("MSFT", 0)]
    assert latest.superseded == 2


def test_equal_revision_replay_is_not_counted_as_superseded() -> None:
    latest = latest_bars([bar("AAPL", 0, rev=1), bar("AAPL", 0, rev=1)])
    assert len(latest.items) == 1 and latest.superseded == 0


def stored_as(stored_bar: BarV1, rev: int) -> StoredBar:
    return StoredBar.of(bar_document(stored_bar, T0) | {"rev": rev})


def test_stored_revision_decides_update_replay_or_stale() -> None:
    newer, same, older = bar("A", 0, rev=2), bar("B", 0, rev=1), bar("C", 0, rev=0)
    changed = newer.model_copy(update={"close": newer.close * 0.99, "low": newer.low * 0.98})
    stored = {("A", T0): stored_as(changed, 1), ("B", T0): stored_as(same, 1), ("C", T0): stored_as(older, 4)}
    plan = plan_bar_conflicts([newer, same, older], stored)
    assert plan.updates == [newer] and plan.duplicates == [same] and plan.stale == [older]
    assert plan.current == [newer, same]


def test_a_newer_revision_with_the_stored_values_is_not_written_again() -> None:
    # A restarted producer republishes its backfill with higher revs and the same values.
    republished = bar("A", 0, rev=5_000_000)
    plan = plan_bar_conflicts([republished], {("A", T0): stored_as(republished, 3)})
    assert plan.updates == [] and plan.duplicates == [republished] and plan.stale == []


def test_a_newer_revision_that_closes_the_minute_is_written() -> None:
    closing = bar("A", 0, rev=4).model_copy(update={"final": True})
    in_progress = closing.model_copy(update={"final": False})
    plan = plan_bar_conflicts([closing], {("A", T0): stored_as(in_progress, 3)})
    assert plan.updates == [closing]


def test_bar_document_holds_the_contract_fields_without_nan() -> None:
    doc = bar_document(bar("AAPL", 0, rev=2), ingested_at=T0)
    assert set(doc) == {
        "ticker", "ts", "open", "high", "low", "close", "volume", "source", "rev", "final", "ingested_at"
    }  # fmt: skip
    assert doc["ts"] == T0 and doc["rev"] == 2
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in doc.values())


def test_portfolio_is_an_outer_merge_with_missing_tickers_absent() -> None:
    rows = portfolio_rows(
        [bar("AAPL", 0, close=10.0), bar("MSFT", 0, close=20.0), bar("AAPL", 1, close=11.0)]
    )
    assert rows == {T0: {"AAPL": 10.0, "MSFT": 20.0}, T0 + timedelta(minutes=1): {"AAPL": 11.0}}
    assert portfolio_set(rows[T0]) == {"close.AAPL": 10.0, "close.MSFT": 20.0}


def prediction(trained_minutes: int, yhat: float = 100.0) -> PredictionV1:
    return PredictionV1(
        ticker="AAPL",
        ts=T0 + timedelta(minutes=1),
        yhat=yhat,
        horizon_min=1,
        based_on_ts=T0,
        model_version="m",
        trained_at=T0 + timedelta(minutes=trained_minutes),
        target="return",
    )


def test_latest_trained_prediction_wins_in_a_batch_and_against_the_store() -> None:
    latest = latest_predictions([prediction(5, 1.0), prediction(2, 2.0), prediction(5, 3.0)])
    assert [p.yhat for p in latest.items] == [3.0]
    key = ("AAPL", T0 + timedelta(minutes=1))
    assert plan_prediction_conflicts([prediction(3)], {key: T0 + timedelta(minutes=4)}) == []
    assert plan_prediction_conflicts([prediction(4)], {key: T0 + timedelta(minutes=4)}) == [prediction(4)]


def test_prediction_document_holds_the_interval_or_null() -> None:
    with_interval = prediction(1).model_copy(update={"q10": 99.5, "q90": 100.4})
    doc = prediction_document(with_interval, T0)
    assert (doc["q10"], doc["q90"], doc["yhat"]) == (99.5, 100.4, 100.0)
    # Without one (an older trainer, a stand-in) the fields are null, so a re-forecast clears an old interval.
    assert (prediction_document(prediction(1), T0)["q10"], prediction_document(prediction(1), T0)["q90"]) == (
        None,
        None,
    )
