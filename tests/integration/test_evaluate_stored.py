"""``portfolio evaluate --from-predictions`` scores stored predictions against the stored bars of their span,
on the real database, with the same figures as the table of the same frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from services.scoring.tables import rows_from_frames, rows_from_predictions
from shared.mongo import BARS, PREDICTIONS, database, make_client
from shared.settings import Settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
VERSION = "per_stock-return-ab12cd34.0"


def test_stored_predictions_are_scored_against_the_bars_of_their_span(integration_settings: Settings) -> None:
    closes = [100.0, 101.0, 100.5, 100.7, 100.2, 100.9, 101.3, 100.8, 101.1, 101.6, 101.0, 101.4]
    bars = [{"ticker": "AAPL", "ts": T0 + timedelta(minutes=i), "close": c, "final": True}
            for i, c in enumerate(closes)]  # fmt: skip
    # Years older than any prediction: not what they are scored against, and not read.
    bars.append({"ticker": "AAPL", "ts": T0 - timedelta(days=400), "close": 50.0, "final": True})
    predictions: list[dict[str, Any]] = [
        {"ticker": "AAPL", "ts": T0 + timedelta(minutes=i), "based_on_ts": T0 + timedelta(minutes=i - 1),
         "yhat": closes[i - 1] + 0.1 * (closes[i] - closes[i - 1]), "model_version": VERSION}
        for i in range(1, len(closes))
    ]  # fmt: skip
    with make_client(integration_settings) as client:
        db = database(client, integration_settings)
        db[BARS].insert_many([dict(b) for b in bars])
        db[PREDICTIONS].insert_many([dict(p) for p in predictions])
        stored = rows_from_predictions(db, None)
    expected = rows_from_frames(pd.DataFrame(bars), pd.DataFrame(predictions))
    model = {r["ticker"]: r for r in stored if r["forecaster"] == "model"}
    assert model["AAPL"]["n"] == len(closes) - 1
    assert model["AAPL"]["mse_ratio"] == pytest.approx(0.81)  # errors 0.9 of naive's
    assert [(r["ticker"], r["forecaster"], r["n"], r["mse_ratio"]) for r in stored] == [
        (r["ticker"], r["forecaster"], r["n"], r["mse_ratio"]) for r in expected
    ]
