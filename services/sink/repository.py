"""The sink's MongoDB side: one decoded batch written idempotently (retries are the caller's:
:mod:`services.sink.isolation`).

Per batch: read the ``latest`` documents of the partitions in it (one small query), plan which items stay
in progress and which settle (:mod:`services.sink.open_items`), insert the settled ones into history,
deliver the settled closes to the portfolio rows' owners (:mod:`services.sink.close_delivery`), write
the rows of the closes this sink owns, then rewrite the ``latest`` documents. Each step may be repeated
(a replay after a crash, a retry after an outage) and leaves the same documents: history is written and
the closes are delivered before ``latest`` forgets an item. An insert that meets a stored document
(E11000) is a late item: gathered (:mod:`services.sink.late`) and, when due, compared with the stored one
together with every other gathered item; only a strictly newer one replaces it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.errors import InvalidDocument
from pymongo.collection import Collection
from pymongo.database import Database

from services.sink.batch import DecodedBatch
from services.sink.inserts import insert_new
from services.sink.late import LateItems
from services.sink.open_items import (
    Item,
    Key,
    PartitionState,
    Plan,
    plan,
    settle_idle,
    state_from_doc,
    state_to_doc,
)
from services.sink.portfolio import CloseV1, PortfolioWriter, encode_close
from services.sink.replace import (
    finish_replacements,
    rewrite_open,
    whole_minutes,
)
from services.sink.writes import (
    bar_item,
    latest_bars,
    latest_predictions,
    prediction_item,
    stored_bar_item,
    stored_prediction_item,
)
from shared.layout import item_id, latest_id, open_collection, prediction_id
from shared.mongo import BARS, LATEST, PORTFOLIO, PREDICTIONS
from shared.schemas import BarV1, PredictionV1

logger = logging.getLogger(__name__)

Document = dict[str, Any]
# Hands (key, value) closes to the closes topic and returns once they are delivered.
Deliver = Callable[[Sequence[tuple[str, bytes]]], None]


@dataclass
class Settled:
    """What became of the items a batch settled into one history collection."""

    current: list[Item] = field(default_factory=list)  # now the stored values (written or already there)
    late: list[Item] = field(default_factory=list)  # met a stored document: gathered, compared when due
    inserted: int = 0
    updated: int = 0
    replayed: int = 0
    stale: int = 0


@dataclass
class WriteOutcome:
    bars_inserted: int = 0
    bars_updated: int = 0
    bars_replayed: int = 0
    bars_in_progress: int = 0  # bars held in the batch's ``latest`` documents, not yet in history
    revisions_ignored: int = 0  # superseded in the batch, or older than what is stored
    portfolio_rows: int = 0
    predictions_written: int = 0
    closes_published: int = 0
    late_gathered: int = 0  # late items (bars, predictions, closes) gathered, to be compared when due

    @property
    def documents_written(self) -> dict[str, int]:
        return {
            BARS: self.bars_inserted + self.bars_updated,
            PORTFOLIO: self.portfolio_rows,
            PREDICTIONS: self.predictions_written,
        }


@dataclass(frozen=True)
class _Kind:
    name: str  # the history collection, and the prefix of its ``latest`` documents
    rank_field: str
    from_stored: Callable[[Any], Item]
    id_of: Callable[[Key], str]  # the ``_id`` of an item's documents (history and in progress)


BAR_KIND = _Kind(BARS, "rev", stored_bar_item, lambda k: item_id(k[0], k[1]))
PREDICTION_KIND = _Kind(PREDICTIONS, "trained_at", stored_prediction_item, lambda k: prediction_id(*k))


def _key_query(items: Iterable[Item]) -> Document:
    # Every stored document of the items' minutes, by ``ts``, not ``_id``: documents of the earlier layout
    # (ObjectId _id) are found too, and FerretDB pays least for a range (services.sink.replace). A
    # superset, filtered in Python.
    return whole_minutes(item.ts for item in items)


class SinkRepository:
    """The collections the sink owns. ``deliver(closes)`` puts closes on the closes topic and returns once
    they are delivered; ``now`` is injectable so tests can pin ``ingested_at``."""

    def __init__(
        self,
        db: Database[Document],
        deliver: Deliver,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        settle_s: float = 60.0,
    ) -> None:
        self.db = db
        # Untouched for half the bound, an item settles: the other half is for the sweep's period
        # (services.sink.app) and the write itself.
        self.idle = timedelta(seconds=settle_s / 2)
        self.latest = db[LATEST]
        self.late = LateItems(db, self.idle)
        self.portfolio = PortfolioWriter(db, self.late)
        self._deliver = deliver
        self._now = now

    def forget(self, kind: str, partitions: Iterable[int]) -> None:
        """Partitions of ``kind`` gone to another member (a rebalance): their late items are its own."""
        self.late.forget(kind, partitions)

    def ping(self) -> None:
        self.db.command("ping")

    def write(self, batch: DecodedBatch) -> WriteOutcome:
        """Write one decoded batch once; raise on any database error.

        Raises ``InvalidDocument``/``OverflowError`` before writing anything if a message could not be
        stored in history: in-progress items live in ``latest`` as JSON, where such a value would pass
        unnoticed and fail later, when an innocent message of the same ticker settles it.
        """
        check_storable(batch)
        finish_replacements(self.db)
        outcome = WriteOutcome()
        bars = latest_bars(batch.bars)
        predictions = latest_predictions(batch.predictions)
        outcome.revisions_ignored = bars.superseded
        bar_items = [(batch.bar_partitions[b.ticker], bar_item(b)) for b in bars.items]
        prediction_items = [
            (batch.prediction_partitions[p.ticker], prediction_item(p)) for p in predictions.items
        ]
        now = self._now()
        since = None if batch.settle_all else now - self.idle
        states = self._load_states(BAR_KIND, bar_items, batch.sweep.get(BARS, set())) | self._load_states(
            PREDICTION_KIND, prediction_items, batch.sweep.get(PREDICTIONS, set())
        )

        bar_plans = _plan_all(BAR_KIND, states, bar_items, now, since)
        settled = self._settle(BAR_KIND, bar_plans, now)
        replayed = [i for p in bar_plans.values() for i in p.replayed]
        # Delivered before ``latest`` forgets these bars: a replay may never meet them again (they often
        # settle because of a later bar), so a close lost in a crash after that would be lost for good.
        # Late ones too, now: a row keeps the close of the highest ``rev``, as history keeps the bar.
        sent = settled.current + settled.late + replayed
        self._deliver([encode_close(i.ticker, i.ts, i.doc["close"], i.rank) for i in sent])
        outcome.closes_published = len(sent)
        outcome.bars_inserted = settled.inserted
        outcome.bars_replayed = len(replayed)
        outcome.bars_in_progress = sum(len(states[latest_id(BARS, p)].open) for p in bar_plans)
        outcome.revisions_ignored += sum(p.stale for p in bar_plans.values())

        prediction_plans = _plan_all(PREDICTION_KIND, states, prediction_items, now, since)
        written = self._settle(PREDICTION_KIND, prediction_plans, now)
        outcome.predictions_written = written.inserted
        outcome.late_gathered = len(settled.late) + len(written.late)

        apply_now = batch.settle_all or batch.caught_up
        applied = self.late.apply(BARS, stored_bar_item, _key_query, now, apply_now)
        outcome.bars_updated, outcome.bars_replayed = (
            applied.updated,
            outcome.bars_replayed + applied.replayed,
        )
        outcome.revisions_ignored += applied.stale
        applied = self.late.apply(PREDICTIONS, stored_prediction_item, _key_query, now, apply_now)
        outcome.predictions_written += applied.updated

        rows = self.portfolio.write(batch.closes, batch.sweep.get(PORTFOLIO, set()), now, since, apply_now)
        outcome.portfolio_rows, outcome.late_gathered = rows.written, outcome.late_gathered + rows.late
        for kind in (BAR_KIND, PREDICTION_KIND):
            self._write_open(kind, {k: v for k, v in states.items() if k.startswith(f"{kind.name}|")})
        return outcome

    def _write_open(self, kind: _Kind, states: dict[str, PartitionState]) -> None:
        """The changed items in progress rewritten (one delete_many and one insert_many for all partitions),
        then the bookkeeping of the partitions whose settled items changed."""
        gone: list[str] = []
        documents: list[Document] = []
        for key, state in sorted(states.items()):
            partition = int(key.split("|")[1])
            keys, written = state.open_changes()
            gone += [kind.id_of(key) for key in keys]
            documents += [
                {"_id": kind.id_of(i.key)} | i.doc | {"partition": partition, "updated_at": i.seen_at}
                for i in written
            ]
        rewrite_open(self.db[open_collection(kind.name)], gone, documents)
        for key, state in sorted(states.items()):
            if state.legacy or state.recent != state.recent_loaded:
                kind_name, number = key.split("|")
                document = {"kind": kind_name, "partition": int(number)} | state_to_doc(state)
                self.latest.replace_one({"_id": key}, document, upsert=True)

    def _load_states(
        self, kind: _Kind, items: Sequence[tuple[int, Item]], sweep: set[int]
    ) -> dict[str, PartitionState]:
        partitions = sorted({p for p, _ in items} | sweep)
        if not partitions:
            return {}
        ids = [latest_id(kind.name, p) for p in partitions]
        stored = {doc["_id"]: doc for doc in self.latest.find({"_id": {"$in": ids}})}
        open_docs: dict[int, list[Document]] = {p: [] for p in partitions}
        for doc in self.db[open_collection(kind.name)].find({"partition": {"$in": partitions}}):
            open_docs[doc["partition"]].append(doc)
        return {
            latest_id(kind.name, p): state_from_doc(
                stored.get(latest_id(kind.name, p)), open_docs[p], kind.from_stored
            )
            for p in partitions
        }

    def _settle(self, kind: _Kind, plans: dict[int, Plan], now: datetime) -> Settled:
        """Insert the items the plans settle into history; those already stored are gathered as late, with
        the partition they came from, before anything forgets them."""
        result = Settled()
        # Gathered entries of partitions new to this sink read back first (added to, they count as held).
        self.late.load(kind.name, plans)
        items = [(p, i) for p, plan_ in sorted(plans.items()) for i in plan_.settle]
        if not items:
            return result
        collection: Collection[Document] = self.db[kind.name]
        documents = [self._document(kind, i, now) for _, i in items]
        conflicts = set(insert_new(collection, documents))
        result.current = [item for n, (_, item) in enumerate(items) if n not in conflicts]
        result.inserted = len(result.current)
        result.late = [items[n][1] for n in sorted(conflicts)]
        self.late.add(kind.name, [(items[n][0], documents[n]) for n in sorted(conflicts)], now)
        return result

    @staticmethod
    def _document(kind: _Kind, item: Item, now: datetime) -> Document:
        return {"_id": kind.id_of(item.key)} | item.doc | {"ingested_at": now}


def check_storable(batch: DecodedBatch) -> None:
    """What history and ``portfolio`` would refuse, refused now: integers BSON cannot hold (64-bit),
    non-finite numbers (FerretDB drops the connection on NaN) and anything BSON cannot encode."""
    messages: list[BarV1 | PredictionV1 | CloseV1] = [*batch.bars, *batch.predictions]
    for message in messages + [close for _, close in batch.closes]:
        values = dict(message)  # the fields as held (model_dump would format the dates)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidDocument(f"{name}={value} in {type(message).__name__} {message.ticker}")
        bson.encode(values)  # OverflowError / InvalidDocument


def _plan_all(
    kind: _Kind,
    states: dict[str, PartitionState],
    items: Sequence[tuple[int, Item]],
    now: datetime,
    untouched_since: datetime | None,
) -> dict[int, Plan]:
    """Plans for every partition of ``kind`` loaded (with items or swept): each settles what has been
    untouched since ``untouched_since`` (everything when None)."""
    by_partition: dict[int, list[Item]] = {}
    for key in states:
        name, number = key.split("|")
        if name == kind.name:
            by_partition[int(number)] = []
    for partition, item in items:
        by_partition[partition].append(item)
    plans: dict[int, Plan] = {}
    for partition, group in by_partition.items():
        state = states[latest_id(kind.name, partition)]
        plans[partition] = plan(state, group, now)
        settle_idle(state, untouched_since, plans[partition])
    return plans
