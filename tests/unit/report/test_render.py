"""The report draws every ticker asked for, also one the model has not forecast (yet) while others have."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from services.report.render import draw
from tests.unit.report.test_same_figures import recording


def test_a_ticker_without_scored_model_forecasts_is_drawn_beside_the_others() -> None:
    closes, predictions = recording()
    # DDD has bars, but only naive stand-ins: nothing of the model's to score or to band.
    extra = closes[closes["ticker"] == "AAA"].assign(ticker="DDD")
    standins = predictions[predictions["ticker"] == "AAA"].assign(ticker="DDD", model_version="naive-warmup")
    figure = draw(pd.concat([closes, extra]), pd.concat([predictions, standins]), ["AAA", "DDD"])
    try:
        assert len(figure.axes) == 6
    finally:
        plt.close(figure)
