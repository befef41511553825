"""Ranges at several horizons: their coverage per horizon (one scorer) and the fan the report draws."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection

from services.report.page import write_report
from services.report.render import draw
from services.scoring.predictions import range_coverage
from services.scoring.score import POOLED

T0 = pd.Timestamp("2026-11-25T14:30:00Z")


def minute(i: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=i)


def closes(ticker: str, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"ticker": ticker, "ts": [minute(i) for i in range(len(values))], "close": values, "final": True}
    )


def ranged(ticker: str, based_on: int, horizon: int, low: float, high: float) -> dict[str, object]:
    return {"ticker": ticker, "ts": minute(based_on + horizon), "based_on_ts": minute(based_on),
            "horizon_min": horizon, "yhat": (low + high) / 2, "q10": low, "q90": high,
            "model_version": "m"}  # fmt: skip


def test_range_coverage_counts_each_horizon_per_ticker_and_pooled() -> None:
    bars = pd.concat([closes("AAA", [100.0] * 10), closes("BBB", [50.0] * 10)])
    predictions = pd.DataFrame(
        [
            ranged("AAA", 0, 1, 99.0, 101.0),  # inside
            ranged("AAA", 1, 1, 100.5, 101.0),  # below the range
            ranged("AAA", 0, 5, 99.0, 101.0),  # inside
            ranged("BBB", 0, 5, 49.0, 49.5),  # above the range
            ranged("BBB", 2, 5, 49.0, 51.0),  # inside
            ranged("BBB", 8, 5, 49.0, 51.0),  # its minute has no bar yet: not scored
        ]
    )
    cover = range_coverage(bars, predictions)
    assert {(h, c.n, c.inside, c.below, c.above) for h, c in cover["AAA"].items()} == {
        (1, 2, 1, 1, 0),
        (5, 1, 1, 0, 0),
    }
    assert {(h, c.n, c.inside, c.below, c.above) for h, c in cover[POOLED].items()} == {
        (1, 2, 1, 1, 0),
        (5, 3, 2, 0, 1),
    }
    # The earlier form (no horizon_min) is the next minute's.
    assert set(range_coverage(bars, predictions.drop(columns="horizon_min"))[POOLED]) == {1}


def test_the_report_draws_the_fan_of_the_newest_ranges_ahead_of_the_newest_bar(tmp_path: Path) -> None:
    bars = closes("AAA", list(100 + np.arange(60) * 0.01))
    newest = 59
    predictions = pd.DataFrame(
        [ranged("AAA", i - 1, 1, 99.0, 102.0) for i in range(1, 60)]
        + [ranged("AAA", newest, h, 100.0 - h / 10, 101.0 + h / 10) for h in (1, 5, 15, 30)]
    )
    figure = draw(bars, predictions, ["AAA"])
    try:
        price = figure.axes[2]
        fans = [c for c in price.collections if isinstance(c, PolyCollection)]
        assert len(fans) == 1
        xs = np.asarray(fans[0].get_paths()[0].vertices)[:, 0]
        # From the newest bar's position to 30 minutes past it (the bars are one session, no gap).
        assert (xs.min(), xs.max()) == (newest, newest + 30)
    finally:
        plt.close(figure)
    out = tmp_path / "report.html"
    write_report(out, bars, predictions, title="ranges")
    page = out.read_text()
    assert "80% ranges, per horizon" in page
    assert "<td>1 min</td>" in page
    assert "<td>30 min</td>" not in page  # no 30-minute range has its final bar yet
