"""The trainer's start from what is stored: the checkpoint, then history from MongoDB.

A checkpoint with series (``forecaster/held_series.py``) restores every ticker's closes with the model, and
only the bars stored after the data minute they reach are read: one ranged read for all of them, so a
restart costs the gap, not the history (a full read scanned ``bars`` for 33 s at 100k stored bars on
FerretDB, past 1,500 s at 1M). Tickers the checkpoint does not hold, and every ticker after a checkpoint
without series, are read by :func:`load_history` when their first bar comes, as before.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from services.trainer.forecaster import checkpoint_state
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.portfolio_value import with_portfolio
from services.trainer.forecaster.records import BarIn
from services.trainer.model.series import from_minute, to_minute
from services.trainer.stores.checkpoints import CheckpointStore, checkpoint_name
from services.trainer.stores.history import bars_after, recent_bars
from shared.retry import retry
from shared.settings import Settings

logger = logging.getLogger(__name__)

Rows = Iterable[tuple[str, datetime, float, int, float, float]]


def ingest_stored(forecaster: Forecaster, rows: Rows) -> int:
    """Ingest stored bars (oldest first), and the portfolio's bars they make (``portfolio_value.py``)."""
    count = 0
    value, now = forecaster.portfolio_value, time.monotonic()
    for ticker, ts, close, rev, high, low in rows:
        bar = BarIn(ticker, to_minute(ts), close, rev, True, math.nan, high, low)
        with forecaster.lock:  # a checkpoint never holds a portfolio bar built but not in its series
            for b in with_portfolio(value, [bar], now):
                forecaster.ingest(b.ticker, b.minute, b.close, b.rev, final=True, high=b.high, low=b.low)
        count += 1
    return count


def load_history(
    db: Database[dict[str, Any]], forecaster: Forecaster, tickers: list[str], minutes: int
) -> int:
    return ingest_stored(forecaster, recent_bars(db, tickers, minutes))


def resume(settings: Settings, store: CheckpointStore, forecaster: Forecaster) -> int | None:
    """Restore the checkpoint; the data minute its series reach (None: no series restored)."""
    name = checkpoint_name(settings)
    loaded = retry(
        f"loading checkpoint {name}", lambda: store.load(name), retry_on=(PyMongoError,), attempts=5
    )
    if not loaded.ok:
        logger.error("checkpoint %s unreadable: starting cold", name)
        return None
    state = loaded.value
    if state is not None and forecaster.restore(state):
        reached = checkpoint_state.reached(state)
        logger.info("resumed from checkpoint %s: model=%s, %d scalers, %d tickers' series%s", name,
                    forecaster.model_version, len(forecaster.scalers), len(forecaster.tickers()),
                    f" to {from_minute(reached).isoformat()}" if reached is not None else "")  # fmt: skip
        return reached
    logger.info("no usable checkpoint %s: cold start when history allows", name)
    return None


def catch_up(db: Database[dict[str, Any]], forecaster: Forecaster, reached: int) -> int:
    """Ingest the bars stored after ``reached`` for the restored tickers; the number read."""
    tickers = forecaster.tickers()
    started = time.perf_counter()
    read = retry(
        "reading the bars stored after the checkpoint",
        lambda: ingest_stored(forecaster, bars_after(db, tickers, from_minute(reached))),
        retry_on=(PyMongoError,),
        attempts=5,
    )
    if not read.ok:
        # Without the gap the series would hold a hole: drop them, and their history is read in full.
        forecaster.forget(tickers)
        logger.warning("bars after the checkpoint not read: %d tickers' history read in full", len(tickers))
        return 0
    count = read.value or 0
    logger.info("loaded %d stored bars after the checkpoint for %d restored tickers in %.2f s", count,
                len(tickers), time.perf_counter() - started)  # fmt: skip
    return count
