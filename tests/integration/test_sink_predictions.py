"""Predictions keyed by (ticker, ts, horizon_min) on the real FerretDB (issue 18's contract), beside those
stored before horizons came (``_id`` without the horizon, ``horizon_min`` 1, unique per (ticker, ts))."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from services.scoring.stored import load_predictions
from services.sink.batch import DecodedBatch
from services.sink.writes import prediction_document
from shared.layout import item_id, prediction_id
from shared.mongo import PREDICTIONS, database, ensure_indexes, make_client
from shared.schemas import PredictionV1
from shared.settings import Settings
from testkit.bars import T0, prediction
from tests.integration.sink_support import CommandCounter, Sink

pytestmark = pytest.mark.integration

HORIZONS = (1, 5, 15, 30)
TS = T0 + timedelta(minutes=40)


def ahead(horizon: int, yhat: float, trained_minute: int = 0) -> PredictionV1:
    return prediction(
        "AAPL", minute=40, yhat=yhat, trained_at=T0 + timedelta(minutes=trained_minute)
    ).model_copy(update={"horizon_min": horizon, "based_on_ts": TS - timedelta(minutes=horizon)})


def settle(writer: Sink, predictions: list[PredictionV1]) -> None:
    # Settled at once, as a stopping sink does: the test is about the keys, not about when.
    batch = DecodedBatch(
        predictions=predictions, prediction_partitions={"AAPL": 0, "MSFT": 0}, settle_all=True
    )
    writer.write(batch)


@pytest.fixture
def legacy_db(integration_settings: Settings) -> Iterator[tuple[Sink, Database[dict[str, Any]]]]:
    """A database of the earlier layout: MSFT's and AAPL's 1-minute predictions of TS under ``item_id``,
    unique per (ticker, ts); then the sink's indexes ensured, as its start does."""
    with make_client(integration_settings, event_listeners=[counter := CommandCounter()]) as client:
        db = database(client, integration_settings)
        db[PREDICTIONS].create_index(
            [("ticker", ASCENDING), ("ts", ASCENDING)], unique=True, name="ticker_ts"
        )
        for old in (prediction("MSFT", minute=40, yhat=50.0), ahead(1, 90.0)):
            doc = prediction_document(old, ingested_at=T0)  # as the earlier sink wrote it
            db[PREDICTIONS].insert_one({"_id": item_id(old.ticker, old.ts)} | doc)
        ensure_indexes(db)
        yield Sink(integration_settings, db, counter), db


def test_every_horizon_is_stored_under_its_own_key_beside_predictions_of_the_earlier_form(
    legacy_db: tuple[Sink, Database[dict[str, Any]]],
) -> None:
    writer, db = legacy_db
    assert "ticker_ts" not in db[PREDICTIONS].index_information()  # it would refuse a second horizon
    settle(writer, [ahead(h, 100.0 + h, trained_minute=5) for h in HORIZONS])

    stored = {d["_id"]: d for d in db[PREDICTIONS].find()}
    # AAPL's 1-minute prediction of the earlier form was replaced by the newer one, under the new _id.
    assert set(stored) == {item_id("MSFT", TS)} | {prediction_id("AAPL", TS, h) for h in HORIZONS}
    assert {stored[prediction_id("AAPL", TS, h)]["yhat"] for h in HORIZONS} == {101.0, 105.0, 115.0, 130.0}

    # An older forecast of one horizon, late, changes nothing; a newer one replaces only its horizon.
    settle(writer, [ahead(5, 1.0, trained_minute=1), ahead(15, 215.0, trained_minute=9)])
    yhat = {d["horizon_min"]: d["yhat"] for d in db[PREDICTIONS].find({"ticker": "AAPL"})}
    assert yhat == {1: 101.0, 5: 105.0, 15: 215.0, 30: 130.0}

    twin = dict(stored[prediction_id("AAPL", TS, 30)], _id="another")
    with pytest.raises(DuplicateKeyError):  # the unique (ticker, ts, horizon_min) index
        db[PREDICTIONS].insert_one(twin)

    # Readers may ask for one horizon; the earlier form's predictions are 1-minute ones.
    one_minute = load_predictions(db, None, TS, TS, horizon_min=1)
    assert sorted(zip(one_minute["ticker"], one_minute["yhat"], strict=True)) == [
        ("AAPL", 101.0),
        ("MSFT", 50.0),
    ]
    assert load_predictions(db, ["AAPL"], TS, TS, horizon_min=30)["yhat"].tolist() == [130.0]
