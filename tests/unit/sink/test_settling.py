from __future__ import annotations

from datetime import UTC, datetime, timedelta

from confluent_kafka import TopicPartition

from services.sink.open_items import PartitionState, Plan, plan, settle_idle, state_from_doc, state_to_doc
from services.sink.settling import SweepClock, settle_on_stop
from services.sink.writes import bar_item, stored_bar_item
from shared.layout import dump_json
from shared.mongo import BARS, PORTFOLIO
from testkit.bars import bar
from tests.conftest import make_settings

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def test_an_item_in_progress_settles_once_untouched_long_enough_and_everything_on_a_stop() -> None:
    state = PartitionState()
    plan(state, [bar_item(bar("A", 0)), bar_item(bar("B", 0))], NOW)
    plan(state, [bar_item(bar("A", 0, rev=1))], NOW + timedelta(seconds=20))
    result = Plan()
    settle_idle(state, NOW + timedelta(seconds=10), result)
    assert [i.ticker for i in result.settle] == ["B"] and set(state.open) == {("A", bar("A", 0).ts, 0)}
    # The stamp survives the `latest` document, so a restarted sink keeps the bound.
    open_docs = [i.doc | {"updated_at": i.seen_at} for i in state.open.values()]
    again = state_from_doc(state_to_doc(state), open_docs, stored_bar_item)
    assert [i.seen_at for i in again.open.values()] == [NOW + timedelta(seconds=20)]
    settle_idle(again, None, result)
    assert not again.open and [i.ticker for i in result.settle] == ["B", "A"]


def test_sweeps_come_every_quarter_of_the_bound_over_the_owned_partitions_and_always_on_a_stop() -> None:
    settings = make_settings(sink={"settle_s": 8.0})
    now = [0.0]
    clock = SweepClock(settings, clock=lambda: now[0])
    owned = [
        TopicPartition(settings.kafka.bars_topic, 2),
        TopicPartition(f"{settings.kafka.bars_topic}.closes", 4),
    ]
    assert clock.take(owned) is None
    now[0] = 2.0
    sweep = clock.take(owned)
    assert sweep is not None and sweep.partitions == {BARS: {2}, PORTFOLIO: {4}} and not sweep.settle_all
    assert clock.take(owned) is None
    stop = clock.take(owned, settle_all=True)
    assert stop is not None and stop.settle_all


def test_a_stop_settles_then_writes_the_closes_that_come_back_then_settles_their_rows() -> None:
    polls = iter([2, 0, 1, 0, 0, 0, 5])
    writes: list[bool] = []

    def write(all_open: bool) -> bool:
        writes.append(all_open)
        return True

    assert settle_on_stop(lambda _: next(polls), write, lambda: False)
    assert writes == [True, False, False, True]


def test_items_a_latest_document_of_the_earlier_layout_holds_as_json_are_taken_over() -> None:
    legacy = {"open": dump_json([bar_item(bar("A", 0)).doc]), "recent": "[]"}
    state = state_from_doc(legacy, [], stored_bar_item)
    gone, written = state.open_changes()
    assert state.legacy and gone == [] and [(i.ticker, i.rank) for i in written] == [("A", 0)]
