"""The sink's MongoDB side: idempotent writes of bars, portfolio rows and predictions, retried until done.

Every write here may be repeated (a replay after a crash, a retry after an outage) and leaves the same
documents: inserts that hit the unique index (E11000) fall back to comparing revisions, and only a newer
revision is written over a stored one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from services.sink.writes import (
    BarKey,
    StoredBar,
    bar_document,
    bar_key,
    bar_values,
    plan_bar_conflicts,
    plan_prediction_conflicts,
    portfolio_rows,
    portfolio_rows_from,
    portfolio_set,
    prediction_document,
    prediction_values,
)
from shared.lifecycle import StopFlag
from shared.mongo import BARS, PORTFOLIO, PREDICTIONS
from shared.retry import Backoff
from shared.schemas import BarV1, PredictionV1

logger = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
Document = dict[str, Any]


class WriteConflict(PyMongoError):
    """Another writer changed a document between our read and our update: the batch is written again."""


@dataclass
class WriteOutcome:
    bars_inserted: int = 0
    bars_updated: int = 0
    bars_duplicate: int = 0
    bars_stale: int = 0
    portfolio_rows: int = 0
    predictions_written: int = 0
    current_bars: list[BarV1] = field(default_factory=list)

    @property
    def documents_written(self) -> dict[str, int]:
        return {
            BARS: self.bars_inserted + self.bars_updated,
            PORTFOLIO: self.portfolio_rows,
            PREDICTIONS: self.predictions_written,
        }


def insert_new(collection: Collection[Document], documents: Sequence[Document]) -> list[int]:
    """Insert ``documents`` unordered; return the indexes of those whose key already exists.

    Any error other than a duplicate key is raised, and the caller writes the whole batch again.
    """
    if not documents:
        return []
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise
        return sorted(e["index"] for e in error.details["writeErrors"])
    return []


def _key_query(keys: Iterable[BarKey]) -> Document:
    # A superset ($in × $in) filtered in Python: one index range scan on MongoDB, and far faster on
    # FerretDB than an $or of one clause per key.
    keys = list(keys)
    return {
        "ticker": {"$in": sorted({t for t, _ in keys})},
        "ts": {"$in": sorted({ts for _, ts in keys})},
    }


class SinkRepository:
    """The three collections the sink owns. ``now`` is injectable so tests can pin ``ingested_at``."""

    def __init__(self, db: Database[Document], now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.db = db
        self.bars = db[BARS]
        self.portfolio = db[PORTFOLIO]
        self.predictions = db[PREDICTIONS]
        self._now = now
        # Whether other sinks may update the same portfolio rows (set from the partition assignment).
        self.portfolio_shared = True

    def ping(self) -> None:
        self.db.command("ping")

    def write(self, bars: Sequence[BarV1], predictions: Sequence[PredictionV1]) -> WriteOutcome:
        """Write one (deduplicated) batch once; raise on any database error. Bars before the portfolio:
        the portfolio takes only closes that are now the stored ones, so a stale revision never reaches it."""
        outcome = WriteOutcome()
        self._write_bars(bars, outcome)
        outcome.portfolio_rows = self._write_portfolio(outcome.current_bars)
        outcome.predictions_written = self._write_predictions(predictions)
        return outcome

    def _write_bars(self, bars: Sequence[BarV1], outcome: WriteOutcome) -> None:
        now = self._now()
        conflicts = [bars[i] for i in insert_new(self.bars, [bar_document(b, now) for b in bars])]
        conflict_keys = {bar_key(b) for b in conflicts}
        inserted = [b for b in bars if bar_key(b) not in conflict_keys]
        outcome.bars_inserted = len(inserted)
        outcome.current_bars = inserted
        if not conflicts:
            return
        fields = {"_id": 0, "ticker": 1, "ts": 1, "rev": 1, "open": 1, "high": 1, "low": 1, "close": 1}
        stored = {
            (doc["ticker"], doc["ts"]): StoredBar.of(doc)
            for doc in self.bars.find(_key_query(conflict_keys), fields | {"volume": 1, "final": 1})
            if (doc["ticker"], doc["ts"]) in conflict_keys
        }
        plan = plan_bar_conflicts(conflicts, stored)
        if plan.updates:
            # The rev guard keeps a newer revision written meanwhile by another sink; if that happened
            # the counts differ and the whole batch is planned again from what is stored then.
            result = self.bars.bulk_write(
                [
                    UpdateOne(
                        {"ticker": b.ticker, "ts": b.ts, "rev": {"$lt": b.rev}},
                        {"$set": bar_values(b, now)},
                    )
                    for b in plan.updates
                ],
                ordered=False,
            )
            if result.matched_count != len(plan.updates):
                missed = len(plan.updates) - result.matched_count
                raise WriteConflict(f"{missed} of {len(plan.updates)} bars changed meanwhile")
        outcome.bars_updated = len(plan.updates)
        outcome.bars_duplicate = len(plan.duplicates)
        outcome.bars_stale = len(plan.stale)
        outcome.current_bars = inserted + plan.current

    def _write_portfolio(self, bars: Iterable[BarV1]) -> int:
        rows = portfolio_rows(bars)
        if not rows:
            return 0
        minutes = list(rows)
        existing = [
            minutes[i] for i in insert_new(self.portfolio, [{"ts": ts, "close": rows[ts]} for ts in minutes])
        ]
        # One update command per row, not one bulk_write: FerretDB 1.24 can deadlock when two sinks'
        # multi-statement update batches touch the same rows.
        for ts in existing:
            self.portfolio.update_one({"ts": ts}, {"$set": portfolio_set(rows[ts])})
        if self.portfolio_shared and existing:
            self._repair_portfolio_rows(existing)
        return len(rows)

    def _repair_portfolio_rows(self, minutes: list[datetime]) -> None:
        """Make the rows of ``minutes`` hold every stored bar's close.

        FerretDB applies an update as an unlocked read-modify-write of the whole document (measured: two
        sinks each $set-ting their tickers into the same rows lost ~7% of the fields), so after updating
        rows that another sink may be updating too, re-derive them from ``bars``, the source of truth.
        On MongoDB, whose $set is atomic, this finds nothing to do.
        """
        fields = {"_id": 0, "ticker": 1, "ts": 1, "close": 1}
        truth = portfolio_rows_from(self.bars.find({"ts": {"$in": minutes}}, fields))
        stored = {doc["ts"]: doc.get("close", {}) for doc in self.portfolio.find({"ts": {"$in": minutes}})}
        for ts, closes in truth.items():
            missing = {
                ticker: close for ticker, close in closes.items() if stored.get(ts, {}).get(ticker) != close
            }
            if missing:
                logger.info(
                    "portfolio row %s repaired: %d closes lost to a concurrent update", ts, len(missing)
                )
                self.portfolio.update_one({"ts": ts}, {"$set": portfolio_set(missing)}, upsert=True)

    def _write_predictions(self, predictions: Sequence[PredictionV1]) -> int:
        if not predictions:
            return 0
        now = self._now()
        conflicts = [
            predictions[i]
            for i in insert_new(self.predictions, [prediction_document(p, now) for p in predictions])
        ]
        if not conflicts:
            return len(predictions)
        keys = {bar_key(p) for p in conflicts}
        stored = {
            (doc["ticker"], doc["ts"]): doc["trained_at"]
            for doc in self.predictions.find(_key_query(keys), {"ticker": 1, "ts": 1, "trained_at": 1})
            if (doc["ticker"], doc["ts"]) in keys
        }
        newer = plan_prediction_conflicts(conflicts, stored)
        if newer:
            result = self.predictions.bulk_write(
                [
                    UpdateOne(
                        {"ticker": p.ticker, "ts": p.ts, "trained_at": {"$lte": p.trained_at}},
                        {"$set": prediction_values(p, now)},
                    )
                    for p in newer
                ],
                ordered=False,
            )
            if result.matched_count != len(newer):
                raise WriteConflict(f"{len(newer) - result.matched_count} predictions changed meanwhile")
        return len(predictions) - len(conflicts) + len(newer)

    def write_until_done(
        self,
        bars: Sequence[BarV1],
        predictions: Sequence[PredictionV1],
        stop: StopFlag,
        on_failure: Callable[[Exception], None] | None = None,
        backoff: Backoff | None = None,
    ) -> WriteOutcome | None:
        """Write the batch, retrying with backoff through outages; ``None`` only if ``stop()`` came first.

        Retrying the whole batch is safe (every step is idempotent) and is what FerretDB needs: its
        update batches stop at the first error, with the earlier statements applied.
        """
        backoff = backoff or Backoff(base=0.5, cap=15.0)
        while True:
            try:
                return self.write(bars, predictions)
            except PyMongoError as error:
                if on_failure:
                    on_failure(error)
                if stop.is_set():
                    logger.warning("stopping with a batch unwritten (%s); it will be read again", error)
                    return None
                delay = backoff.next_delay()
                logger.warning(
                    "database write failed (%s: %s); retrying in %.1f s",
                    type(error).__name__,
                    str(error)[:200],
                    delay,
                )
                if stop.wait(delay):
                    logger.warning("stopping with a batch unwritten; it will be read again")
                    return None
