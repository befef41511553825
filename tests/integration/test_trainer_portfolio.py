"""The live portfolio series on the real broker and database: the running trainer publishes predictions of
``_PORTFOLIO`` (the portfolio's value) at every horizon beside the tickers', the sink stores them, and a bar
carrying the reserved name is dead-lettered (``test_faults_poison.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from services.scoring.score import POOLED
from services.scoring.stored import stored_rows
from services.sink import app as sink_app
from services.trainer.forecaster.records import NAIVE_VERSION
from shared.kafka import ensure_topics
from shared.mongo import METRICS, PREDICTIONS, database, make_client
from shared.schemas import PredictionV1
from shared.settings import PORTFOLIO_SERIES, Settings
from testkit.services import ServiceThread
from testkit.waiting import poll_until

from .test_trainer_service import START, TINY, TINY_TRAINER, Predictions, Trainer, make_bars, produce

pytestmark = pytest.mark.integration

HORIZONS = {1, 5, 15, 30}
FIELDS = ["ticker", "ts", "based_on_ts", "horizon_min", "model_version", "yhat"]


class Sink(ServiceThread):
    def __init__(self, settings: Settings) -> None:
        super().__init__(lambda stop: sink_app.run(settings, stop))


def portfolio_horizons(items: list[tuple[str, PredictionV1]], based_on: datetime | None = None) -> set[int]:
    """The horizons of the model's (not the naive stand-in's) forecasts of the portfolio's value."""
    return {
        p.horizon_min
        for _, p in items
        if p.ticker == PORTFOLIO_SERIES
        and p.model_version != NAIVE_VERSION
        and (based_on is None or p.based_on_ts == based_on)
    }


def test_the_trainer_publishes_the_portfolios_forecasts_at_every_horizon_and_the_sink_stores_them(
    settings_factory: Callable[..., Settings],
) -> None:
    tickers = ["AAA", "BBB", "CCC"]
    settings = settings_factory(
        trainer=TINY_TRAINER | {"weights": {"AAA": 2.0, "BBB": 1.0, "CCC": 1.0}},
        common=dict(TINY["common"]) | {"tickers": tickers},
    )
    ensure_topics(settings, [settings.kafka.bars_topic, settings.kafka.predictions_topic])
    reader = Predictions(settings)
    trainer = Trainer(settings, "one")
    sink = Sink(settings)
    try:
        produce(settings, make_bars(tickers, 0, 120))
        # Trained on with the tickers at the cold start: the model's forecast of the newest minute.
        assert reader.wait_for(lambda items: 1 in portfolio_horizons(items), 90)
        for minute in range(120, 123):  # live minutes, each minute's bars in one go
            produce(settings, make_bars(tickers, minute, 1))
        live = START + timedelta(minutes=122)
        assert reader.wait_for(lambda items: portfolio_horizons(items, live) == HORIZONS, 30)
        with make_client(settings) as client:
            db = database(client, settings)

            # Read as every reader reads predictions: history and the items still in progress.
            def stored() -> list[dict[str, Any]]:
                rows = stored_rows(
                    db, PREDICTIONS, [PORTFOLIO_SERIES], live, live + timedelta(minutes=30), FIELDS
                )
                return [r for r in rows if r["based_on_ts"] == live]

            assert poll_until(lambda: len(stored()) == len(HORIZONS), 30)
            assert {r["horizon_min"] for r in stored()} == HORIZONS
            assert all(r["model_version"] != NAIVE_VERSION and r["yhat"] > 0 for r in stored())
            # Scored as its own series, never pooled: the pooled row counts the tickers' forecasts only.
            assert poll_until(lambda: pooled_is_the_tickers(db, tickers), 30)
    finally:
        sink.shutdown()
        trainer.shutdown()
        reader.close()


def pooled_is_the_tickers(db: Database[dict[str, Any]], tickers: list[str]) -> bool:
    rows = list(db[METRICS].find({"kind": "walk_forward"}))
    lineages = {r["lineage"] for r in rows if r["ticker"] == POOLED}
    for lineage in lineages:
        mine = {r["ticker"]: r["n"] for r in rows if r["lineage"] == lineage}
        if PORTFOLIO_SERIES in mine and mine[PORTFOLIO_SERIES] > 0:
            return bool(mine[POOLED] == sum(mine.get(t, 0) for t in tickers))
    return False
