"""What the sink writes to MongoDB, decided without I/O.

The write strategy is insert-first: a new (ticker, minute) is inserted; a key that already exists
(E11000) is compared with the stored ``rev`` and only a strictly newer revision is sent as an update.
Updates that cannot match are never sent: FerretDB runs each update as a collection scan and an update
batch stops at its first error, so guarded upserts that fail on stale revisions would be slow and fragile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.schemas import BarV1, PredictionV1

BarKey = tuple[str, datetime]


def bar_key(bar: BarV1 | PredictionV1) -> BarKey:
    return (bar.ticker, bar.ts)


@dataclass
class Latest:
    """The newest message per key in one batch, and how many older revisions it replaced."""

    items: list[Any]
    superseded: int


def latest_bars(bars: Iterable[BarV1]) -> Latest:
    """Keep the highest ``rev`` per (ticker, ts); on equal revs the later message wins."""
    best: dict[BarKey, BarV1] = {}
    superseded = 0
    for bar in bars:
        held = best.get(bar_key(bar))
        if held is not None and held.rev > bar.rev:
            superseded += 1
            continue
        if held is not None and held.rev < bar.rev:
            superseded += 1
        best[bar_key(bar)] = bar
    return Latest(list(best.values()), superseded)


def latest_predictions(predictions: Iterable[PredictionV1]) -> Latest:
    """Keep the most recently trained prediction per (ticker, ts); on a tie the later message wins."""
    best: dict[BarKey, PredictionV1] = {}
    superseded = 0
    for prediction in predictions:
        held = best.get(bar_key(prediction))
        if held is not None and held.trained_at > prediction.trained_at:
            superseded += 1
            continue
        if held is not None:
            superseded += 1
        best[bar_key(prediction)] = prediction
    return Latest(list(best.values()), superseded)


def bar_values(bar: BarV1, ingested_at: datetime) -> dict[str, Any]:
    """The fields a revision replaces (everything but the key)."""
    return {
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "source": bar.source,
        "rev": bar.rev,
        "final": bar.final,
        "ingested_at": ingested_at,
    }


def bar_document(bar: BarV1, ingested_at: datetime) -> dict[str, Any]:
    return {"ticker": bar.ticker, "ts": bar.ts} | bar_values(bar, ingested_at)


def prediction_values(prediction: PredictionV1, ingested_at: datetime) -> dict[str, Any]:
    return {
        "yhat": prediction.yhat,
        "horizon_min": prediction.horizon_min,
        "based_on_ts": prediction.based_on_ts,
        "model_version": prediction.model_version,
        "trained_at": prediction.trained_at,
        "target": prediction.target,
        # The 80% interval (optional in v1): None when the message has none, so a re-forecast without one
        # does not leave an older forecast's interval behind.
        "q10": prediction.q10,
        "q90": prediction.q90,
        "ingested_at": ingested_at,
    }


def prediction_document(prediction: PredictionV1, ingested_at: datetime) -> dict[str, Any]:
    return {"ticker": prediction.ticker, "ts": prediction.ts} | prediction_values(prediction, ingested_at)


@dataclass(frozen=True)
class StoredBar:
    """What the conflict plan needs of a stored bar: its revision and its values."""

    rev: int
    values: tuple[float, float, float, float, int, bool]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> StoredBar:
        return cls(
            doc["rev"],
            _ohlcv(doc["open"], doc["high"], doc["low"], doc["close"], doc["volume"], doc["final"]),
        )


def _ohlcv(
    open_: float, high: float, low: float, close: float, volume: int, final: bool
) -> tuple[float, float, float, float, int, bool]:
    return (float(open_), float(high), float(low), float(close), int(volume), bool(final))


def bar_ohlcv(bar: BarV1) -> tuple[float, float, float, float, int, bool]:
    return _ohlcv(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.final)


@dataclass
class ConflictPlan:
    """What to do with bars whose key is already stored."""

    updates: list[BarV1] = field(default_factory=list)  # strictly newer rev: replace the stored values
    # Same rev (a replay), or a newer rev with the very values stored (a restarted producer republishing
    # its backfill): already stored, and an update would cost a collection scan on FerretDB for nothing.
    duplicates: list[BarV1] = field(default_factory=list)
    stale: list[BarV1] = field(default_factory=list)  # older rev: ignored

    @property
    def current(self) -> list[BarV1]:
        """The bars whose values are (or will be, after the updates) the stored ones."""
        return self.updates + self.duplicates


def plan_bar_conflicts(conflicts: Iterable[BarV1], stored_bars: Mapping[BarKey, StoredBar]) -> ConflictPlan:
    """Compare each conflicting bar with the stored one (missing: treated as older, so updated)."""
    plan = ConflictPlan()
    for bar in conflicts:
        stored = stored_bars.get(bar_key(bar))
        if stored is None or (bar.rev > stored.rev and bar_ohlcv(bar) != stored.values):
            plan.updates.append(bar)
        elif bar.rev >= stored.rev:
            plan.duplicates.append(bar)
        else:
            plan.stale.append(bar)
    return plan


def plan_prediction_conflicts(
    conflicts: Iterable[PredictionV1], stored_trained_at: Mapping[BarKey, datetime]
) -> list[PredictionV1]:
    """The conflicting predictions to write: those trained no earlier than the stored one."""
    return [
        p
        for p in conflicts
        if bar_key(p) not in stored_trained_at or p.trained_at >= stored_trained_at[bar_key(p)]
    ]


def _merge(closes: Iterable[tuple[str, datetime, float]]) -> dict[datetime, dict[str, float]]:
    rows: dict[datetime, dict[str, float]] = defaultdict(dict)
    for ticker, ts, close in closes:
        rows[ts][ticker] = close
    return dict(sorted(rows.items()))


def portfolio_rows(bars: Iterable[BarV1]) -> dict[datetime, dict[str, float]]:
    """The outer merge by minute: ``{ts: {ticker: close}}``; a ticker without a bar is simply absent."""
    return _merge((bar.ticker, bar.ts, bar.close) for bar in bars)


def portfolio_rows_from(docs: Iterable[Mapping[str, Any]]) -> dict[datetime, dict[str, float]]:
    """The same outer merge from stored bar documents (``ticker``, ``ts``, ``close``)."""
    return _merge((doc["ticker"], doc["ts"], doc["close"]) for doc in docs)


def portfolio_set(closes: Mapping[str, float]) -> dict[str, float]:
    """``$set`` of the tickers that arrived, so the others' closes in the row stay as they are."""
    return {f"close.{ticker}": close for ticker, close in sorted(closes.items())}
