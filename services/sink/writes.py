"""What the sink writes to MongoDB, decided without I/O: the newest item per key in a batch, the documents
of bars and predictions (the fields readers use), their planner :class:`Item`, and portfolio rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.sink.open_items import Item
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


def prediction_key(prediction: PredictionV1) -> tuple[str, datetime, int]:
    return (prediction.ticker, prediction.ts, prediction.horizon_min)


def latest_predictions(predictions: Iterable[PredictionV1]) -> Latest:
    """Keep the most recently trained prediction per (ticker, ts, horizon_min); on a tie the later wins."""
    best: dict[tuple[str, datetime, int], PredictionV1] = {}
    superseded = 0
    for prediction in predictions:
        held = best.get(prediction_key(prediction))
        if held is not None and held.trained_at > prediction.trained_at:
            superseded += 1
            continue
        if held is not None:
            superseded += 1
        best[prediction_key(prediction)] = prediction
    return Latest(list(best.values()), superseded)


BAR_FIELDS = ("ticker", "ts", "open", "high", "low", "close", "volume", "source", "rev", "final")
PREDICTION_FIELDS = (
    "ticker",
    "ts",
    "yhat",
    "horizon_min",
    "based_on_ts",
    "model_version",
    "trained_at",
    "target",
    "q10",
    "q90",
)


def bar_values(bar: BarV1, ingested_at: datetime | None) -> dict[str, Any]:
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


def bar_document(bar: BarV1, ingested_at: datetime | None) -> dict[str, Any]:
    return {"ticker": bar.ticker, "ts": bar.ts} | bar_values(bar, ingested_at)


def prediction_values(prediction: PredictionV1, ingested_at: datetime | None) -> dict[str, Any]:
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


def prediction_document(prediction: PredictionV1, ingested_at: datetime | None) -> dict[str, Any]:
    return {"ticker": prediction.ticker, "ts": prediction.ts} | prediction_values(prediction, ingested_at)


def _ohlcv(
    open_: float, high: float, low: float, close: float, volume: int, final: bool
) -> tuple[float, float, float, float, int, bool]:
    return (float(open_), float(high), float(low), float(close), int(volume), bool(final))


def bar_ohlcv(bar: BarV1) -> tuple[float, float, float, float, int, bool]:
    return _ohlcv(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.final)


def bar_item(bar: BarV1) -> Item:
    doc = bar_document(bar, ingested_at=None)
    del doc["ingested_at"]
    return Item(bar.ticker, bar.ts, bar.rev, bar.final, bar_ohlcv(bar), doc)


def stored_bar_item(doc: Mapping[str, Any]) -> Item:
    """A bar read back from ``latest`` or from history."""
    fields = {k: doc[k] for k in BAR_FIELDS}
    values = _ohlcv(doc["open"], doc["high"], doc["low"], doc["close"], doc["volume"], doc["final"])
    return Item(doc["ticker"], doc["ts"], doc["rev"], bool(doc["final"]), values, fields)


def prediction_item(prediction: PredictionV1) -> Item:
    doc = prediction_document(prediction, ingested_at=None)
    del doc["ingested_at"]
    # BSON dates hold milliseconds: rank by what a stored copy will say, so a replay compares equal.
    doc["trained_at"] = _millis(prediction.trained_at)
    values = _prediction_values(doc)
    return Item(
        prediction.ticker,
        prediction.ts,
        doc["trained_at"],
        False,
        values,
        doc,
        horizon=prediction.horizon_min,
    )


def stored_prediction_item(doc: Mapping[str, Any]) -> Item:
    fields = {k: doc[k] for k in PREDICTION_FIELDS if k in doc}
    # Stored before horizons came (issue 18): one minute ahead.
    horizon = int(fields.setdefault("horizon_min", 1))
    values = _prediction_values(fields)
    return Item(doc["ticker"], doc["ts"], doc["trained_at"], False, values, fields, horizon=horizon)


def _prediction_values(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    return (float(doc["yhat"]), str(doc["model_version"]), _millis(doc["trained_at"]).isoformat())


def _millis(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)
