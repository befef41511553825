"""The trainer's scores in MongoDB, on the real database: each (ticker, lineage) walk-forward row and each
(ticker, model version) hold-out row once, with the newest figures, however often and however many times
over they are written."""

from __future__ import annotations

import pytest

from services.scoring.score import Score
from services.scoring.stored import read_metrics
from services.scoring.walk_forward import Pending
from services.trainer.forecaster.core import Forecaster
from services.trainer.forecaster.records import Config, HoldoutResult
from services.trainer.stores import metrics_store
from services.trainer.stores.metrics_store import POOLED, write_holdout, write_walk_forward
from shared.mongo import database, make_client
from shared.settings import Settings

pytestmark = pytest.mark.integration
TICKERS = [f"T{i}" for i in range(30)]


def score(forecaster: Forecaster, minute: int) -> None:
    for i, t in enumerate(TICKERS):
        pending = Pending(100.0, 100.0 + 0.01 * i, "L", "per_stock-return-L.0", baseline=100.02)
        forecaster.walk_forward.add(t, pending, 100.0 + 0.02 * (-1) ** minute, minute)


def test_walk_forward_and_holdout_rows_are_replaced_not_duplicated(
    integration_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    forecaster = Forecaster(Config())
    with make_client(integration_settings) as client:
        db = database(client, integration_settings)
        for minute in range(3):
            score(forecaster, minute)
            assert write_walk_forward(db, forecaster) == len(TICKERS) + 1  # and the pooled row
        forecaster.walk_forward.dirty[(TICKERS[0], "L")] = None  # one ticker changed: only its row (and pool)
        assert write_walk_forward(db, forecaster) == 2
        rows = read_metrics(db, "walk_forward", "L")
        assert sorted(r["ticker"] for r in rows) == sorted([*TICKERS, POOLED])
        assert {r["n"] for r in rows if r["ticker"] != POOLED} == {3}
        assert next(r for r in rows if r["ticker"] == POOLED)["n"] == 3 * len(TICKERS)

        # Many changed: written a bounded number at a time, the longest waiting first, each with the pool.
        monkeypatch.setattr(metrics_store, "ROWS_PER_WRITE", 12)
        score(forecaster, 3)
        written = [write_walk_forward(db, forecaster) for _ in range(4)]
        assert written == [13, 13, 7, 0]
        score(forecaster, 4)
        assert write_walk_forward(db, forecaster, everything=True) == len(TICKERS) + 1  # a stop writes all
        assert {r["n"] for r in read_metrics(db, "walk_forward", "L") if r["ticker"] != POOLED} == {5}

        result = HoldoutResult("L", "per_stock-return-L.0", None, {t: Score() for t in TICKERS}, Score())
        for _ in range(2):  # a retried write
            write_holdout(db, result, "per_stock", "return")
        holdout = read_metrics(db, "holdout")
        assert sorted(r["ticker"] for r in holdout) == sorted([*TICKERS, POOLED])
        assert len(read_metrics(db, "walk_forward")) == len(TICKERS) + 1  # untouched by the hold-out's
