from __future__ import annotations

from datetime import timedelta

from services.sink.open_items import PartitionState, plan, state_from_doc, state_to_doc
from services.sink.writes import (
    bar_item,
    latest_bars,
    latest_predictions,
    prediction_document,
    prediction_item,
    stored_bar_item,
    stored_prediction_item,
)
from shared.layout import item_id, minute_id
from shared.schemas import PredictionV1
from testkit.bars import T0, bar, prediction


def test_highest_revision_per_minute_is_kept_and_older_ones_counted() -> None:
    latest = latest_bars(
        [bar("AAPL", 0, rev=1), bar("AAPL", 0, rev=3), bar("AAPL", 0, rev=2), bar("MSFT", 0)]
    )
    assert sorted((b.ticker, b.rev) for b in latest.items) == [("AAPL", 3), ("MSFT", 0)]
    assert latest.superseded == 2


def test_newest_trained_prediction_per_minute_is_kept() -> None:
    def trained(minutes: int) -> PredictionV1:
        return prediction("A", yhat=1.0 + minutes, trained_at=T0 + timedelta(minutes=minutes))

    latest = latest_predictions([trained(3), trained(5), trained(4)])
    assert [p.yhat for p in latest.items] == [6.0] and latest.superseded == 2


def test_ids_are_the_ticker_and_the_minute() -> None:
    assert item_id("AAPL", T0) == "AAPL|2024-03-04T14:30Z" and minute_id(T0) == "2024-03-04T14:30Z"


def test_revisions_stay_in_progress_until_final_and_history_gets_one_insert() -> None:
    state = PartitionState()
    first = plan(state, [bar_item(bar("A", 0, rev=0))])
    second = plan(state, [bar_item(bar("A", 0, rev=1))])
    assert (first.settle, second.settle) == ([], []) and first.changed and second.changed
    final = plan(state, [bar_item(bar("A", 0, rev=2))])  # rev 2 is final
    assert [i.rank for i in final.settle] == [2] and not state.open


def test_stale_and_replayed_items_cost_nothing_in_history() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0, rev=2))])
    replay = plan(state, [bar_item(bar("A", 0, rev=2))])
    stale = plan(state, [bar_item(bar("A", 0, rev=1))])
    assert (replay.settle, len(replay.replayed), replay.changed) == ([], 1, False)
    assert (stale.settle, stale.stale) == ([], 1)
    # A restarted producer's higher rev with the very values stored is a replay too.
    same_values = bar("A", 0, rev=2).model_copy(update={"rev": 9})
    assert len(plan(state, [bar_item(same_values)]).replayed) == 1


def test_a_revision_after_final_is_settled_again() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0, rev=2))])
    late = bar("A", 0, rev=3, close=150.0)
    assert [i.rank for i in plan(state, [bar_item(late)]).settle] == [3]


def test_a_provisional_bar_settles_once_its_ticker_is_minutes_ahead() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0)), bar_item(bar("B", 0))])
    assert plan(state, [bar_item(bar("A", 2))]).settle == []
    settled = plan(state, [bar_item(bar("A", 3))]).settle
    assert [(i.ticker, i.ts) for i in settled] == [("A", T0)]
    assert {k[0] for k in state.open} == {"A", "B"}


def test_state_round_trips_through_its_document() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0, rev=2)), bar_item(bar("A", 1, rev=0))])
    open_docs = [i.doc | {"partition": 0, "updated_at": i.seen_at} for i in state.open.values()]
    again = state_from_doc(state_to_doc(state), open_docs, stored_bar_item)
    assert again.open.keys() == state.open.keys() and again.recent == state.recent
    assert plan(again, [bar_item(bar("A", 0, rev=2))]).replayed


def test_a_provisional_bar_followed_only_by_final_ones_still_settles() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0))])
    settled = plan(state, [bar_item(bar("A", m, rev=2)) for m in (1, 2, 3)]).settle
    assert sorted((i.ts - T0).seconds // 60 for i in settled) == [0, 1, 2, 3] and not state.open


def test_prediction_document_holds_the_interval_or_null_and_keeps_it_through_latest() -> None:
    plain = prediction("A", yhat=100.0)
    with_interval = plain.model_copy(update={"q10": 99.5, "q90": 100.4})
    doc = prediction_document(with_interval, T0)
    assert (doc["q10"], doc["q90"], doc["yhat"]) == (99.5, 100.4, 100.0)
    # Without one (an older trainer, a stand-in) the fields are null, so a re-forecast clears an old interval.
    assert (prediction_document(plain, T0)["q10"], prediction_document(plain, T0)["q90"]) == (None, None)
    # An in-progress prediction read back from `latest` keeps its interval.
    stored = stored_prediction_item(prediction_item(with_interval).doc)
    assert (stored.doc["q10"], stored.doc["q90"]) == (99.5, 100.4)


def test_predictions_of_one_minute_made_at_different_horizons_are_different_items() -> None:
    short = prediction("A", minute=40, yhat=1.0)
    long = short.model_copy(update={"horizon_min": 30, "yhat": 2.0})
    assert len(latest_predictions([short, long]).items) == 2
    state = PartitionState()
    # A 30-minute forecast 3 minutes later does not settle the 1-minute one: each horizon is its own series.
    later = long.model_copy(update={"ts": long.ts + timedelta(minutes=3)})
    result = plan(state, [prediction_item(short), prediction_item(long), prediction_item(later)])
    assert [(i.horizon, i.ts) for i in result.settle] == [(30, short.ts)]
    assert {k[2] for k in state.open} == {1, 30}
    assert (
        stored_prediction_item(
            {k: v for k, v in prediction_item(short).doc.items() if k != "horizon_min"}
        ).horizon
        == 1
    )
