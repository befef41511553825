"""Draw the report: one self-contained HTML page with the charts embedded as PNG (no I/O)."""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec

from services.report.scoring import running_mse_ratio, summary_table

ACTUAL, PREDICTED, NAIVE = "#1f3b73", "#e4572e", "#888888"


def _ticker_axes(fig: Figure, grid: GridSpec, row: int) -> tuple[plt.Axes, plt.Axes]:
    """Two thirds of a ticker's band for prices, one third for the running error below them."""
    top = fig.add_subplot(grid[row * 3 : row * 3 + 2, 0])
    bottom = fig.add_subplot(grid[row * 3 + 2, 0], sharex=top)
    return top, bottom


def draw(closes: pd.DataFrame, predictions: pd.DataFrame, scored: pd.DataFrame, tickers: list[str]) -> Figure:
    """Per ticker: actual closes with the predictions over them, and below, the running MSE ratio to naive."""
    fig = plt.figure(figsize=(11, 3.6 * len(tickers)), dpi=100, layout="constrained")
    ratio = running_mse_ratio(scored)
    grid = fig.add_gridspec(len(tickers) * 3, 1)
    for row, ticker in enumerate(tickers):
        top, bottom = _ticker_axes(fig, grid, row)
        actual = closes[closes["ticker"] == ticker]
        predicted = predictions[predictions["ticker"] == ticker]
        top.plot(actual["ts"], actual["close"], color=ACTUAL, lw=1.2, label="actual close")
        top.plot(
            predicted["ts"], predicted["yhat"], color=PREDICTED, lw=0, marker=".", ms=4, label="prediction"
        )
        top.set_title(ticker, loc="left", fontweight="bold")
        top.set_ylabel("price")
        top.legend(loc="upper left", fontsize=8, frameon=False)
        top.grid(alpha=0.25)
        mine = scored["ticker"] == ticker
        bottom.plot(scored.loc[mine, "ts"], ratio[mine], color=PREDICTED, lw=1.2)
        bottom.axhline(1.0, color=NAIVE, lw=1, ls="--")
        bottom.set_ylabel("MSE / naive")
        bottom.text(
            0.995,
            0.9,
            "above 1: worse than naive",
            transform=bottom.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color=NAIVE,
        )
        bottom.grid(alpha=0.25)
        bottom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz="UTC"))
    return fig


def draw_portfolio(wide: pd.DataFrame) -> Figure:
    """The merged portfolio as an equal-weight index (each ticker rebased to 100 at its first close)."""
    fig, axes = plt.subplots(figsize=(11, 3.2), dpi=100, layout="constrained")
    # Display only: carry a ticker's last close over minutes it did not trade, as a holder's book would.
    filled = wide.ffill()
    rebased = filled / filled.bfill().iloc[0] * 100
    axes.plot(rebased.index, rebased.mean(axis=1), color=ACTUAL, lw=1.5)
    axes.set_title("Portfolio, equal weight (rebased to 100)", loc="left", fontweight="bold")
    axes.grid(alpha=0.25)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz="UTC"))
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _table(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "<p>No prediction has been scored yet: a minute is scored once its final bar is stored.</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "ticker",
            "scored",
            "MSE ratio to naive",
            "MAE model",
            "MAE naive",
            "direction right",
            "moves",
        )
    )
    body = []
    for row in summary.itertuples(index=False):
        verdict = "better" if row.mse_ratio < 1 else "worse"
        body.append(
            f"<tr><td>{html.escape(str(row.ticker))}</td><td>{row.n}</td>"
            f"<td class='{verdict}'>{row.mse_ratio:.3f}</td><td>{row.mae_model:.4f}</td>"
            f"<td>{row.mae_naive:.4f}</td><td>{row.directional_accuracy:.1%}</td><td>{row.moves}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(
    *,
    title: str,
    since: datetime,
    until: datetime,
    charts: list[bytes],
    scored: pd.DataFrame,
    counts: dict[str, int],
) -> str:
    images = "".join(
        f"<img alt='chart' src='data:image/png;base64,{base64.b64encode(chart).decode()}'>"
        for chart in charts
    )
    facts = ", ".join(f"{value:,} {name}" for name, value in counts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
 body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1120px; color: #222; }}
 table {{ border-collapse: collapse; margin: 1rem 0; }}
 th, td {{ padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }}
 th:first-child, td:first-child {{ text-align: left; }}
 .better {{ color: #1a7f37; font-weight: 600; }} .worse {{ color: #b42318; }}
 img {{ max-width: 100%; display: block; margin: 1rem 0; }}
 .muted {{ color: #666; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC · {html.escape(facts)}</p>
<h2>Forecasts against the naive forecast (next close = last close)</h2>
<p>An MSE ratio below 1 means the model beat the naive forecast on those minutes; at a one-minute horizon
that is rare and hard, so read the ratio, not the look of the price chart.</p>
{_table(summary_table(scored))}
{images}
</body></html>
"""
