"""Write the report page from frames of closes and predictions (``portfolio report`` and ``backtest``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from services.report import render
from services.scoring.predictions import range_coverage
from services.scoring.score import POOLED
from services.scoring.tables import rows_from_frames


def write_report(
    out: Path,
    closes: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    title: str,
    tickers: list[str] | None = None,
    wide: pd.DataFrame | None = None,
) -> int:
    """Write an .html page (or the last chart as .png); return the number of scored predictions."""
    shown = tickers or sorted(set(closes["ticker"]))
    rows = rows_from_frames(closes, predictions)
    charts = []
    if wide is not None and not wide.empty:
        charts.append(render.png(render.draw_portfolio(wide[[c for c in wide.columns if c in shown]])))
    charts.append(render.png(render.draw(closes, predictions, shown)))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        out.write_bytes(charts[-1])
    else:
        page = render.html_page(
            title=title,
            since=closes["ts"].min().to_pydatetime(),
            until=closes["ts"].max().to_pydatetime(),
            charts=charts,
            rows=rows,
            counts={"bars": len(closes), "predictions": len(predictions)},
            ranges=range_coverage(closes, predictions).get(POOLED),
        )
        out.write_text(page, encoding="utf-8")
    pooled = [r for r in rows if r["ticker"] == "*" and r["forecaster"] == "model"]
    return int(pooled[0]["n"]) if pooled else 0
