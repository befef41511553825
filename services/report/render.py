"""Draw the report: one self-contained HTML page with the charts embedded as PNG (no I/O).

Per ticker, on an axis of trading minutes only (gaps marked): what is forecast, the predicted against the
actual return of each minute; the running MSE ratio to naive with its 95% band; and the price with the
next minute's predictions and, ahead of the newest forecast bar, the fan of its 80% ranges at every
horizon, with the share of closes each horizon's ranges held. The tables are the one scorer's
(:mod:`services.scoring.score`, :func:`services.scoring.predictions.range_coverage`).
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from services.report.axis import TradingAxis
from services.scoring.coverage import Coverage
from services.scoring.predictions import is_standin, range_coverage, running_ratio, score_predictions

ACTUAL, PREDICTED, NAIVE, BAND = "#1f3b73", "#e4572e", "#888888", "#f4b9a8"


def _mark_gaps(axes: Axes, axis: TradingAxis) -> None:
    for gap in axis.gaps:
        axes.axvline(gap, color=NAIVE, lw=0.6, ls=":")


def _horizons(predictions: pd.DataFrame) -> pd.Series:
    """Each prediction's horizon in minutes (a prediction of the earlier form has none: it is one)."""
    if "horizon_min" not in predictions.columns:
        return pd.Series(1, index=predictions.index, dtype=int)
    return pd.to_numeric(predictions["horizon_min"]).fillna(1).astype(int)


def _range_fan(axes: Axes, axis: TradingAxis, actual: pd.DataFrame, forecast: pd.DataFrame) -> None:
    """The ranges published at the newest forecast bar, drawn ahead of it: horizon h at its position + h."""
    if not {"q10", "q90"} <= set(forecast.columns):
        return
    ranged = forecast.dropna(subset=["q10", "q90"])
    if ranged.empty:
        return
    newest = ranged[ranged["based_on_ts"] == ranged["based_on_ts"].max()]
    newest = newest.assign(h=_horizons(newest)).sort_values("h")
    base = actual[actual["ts"] == newest["based_on_ts"].iloc[0]]
    if base.empty:
        return
    x0, close = float(axis.position(base["ts"])[0]), float(base["close"].iloc[0])
    ahead = x0 + newest["h"].to_numpy(dtype=np.float64)
    axes.fill_between(
        np.concatenate([[x0], ahead]),
        np.concatenate([[close], newest["q10"].to_numpy(dtype=np.float64)]),
        np.concatenate([[close], newest["q90"].to_numpy(dtype=np.float64)]),
        color=BAND, alpha=0.7, lw=0, label="80% ranges ahead",
    )  # fmt: skip
    axes.plot(ahead, newest["yhat"], "o", ms=2.5, color=PREDICTED)


def _held(cover: dict[int, Coverage]) -> str:
    return " · ".join(f"{h} min {c.share:.0%}" for h, c in sorted(cover.items()) if c.share is not None)


def draw(closes: pd.DataFrame, predictions: pd.DataFrame, tickers: list[str]) -> Figure:
    fig = plt.figure(figsize=(11, 6.0 * len(tickers)), dpi=100, layout="constrained")
    grid = fig.add_gridspec(len(tickers) * 5, 1)
    scored = score_predictions(closes, predictions)
    scored = scored[~is_standin(scored["model_version"])] if len(scored) else scored
    ratio = running_ratio(scored)
    held = range_coverage(closes, predictions)
    for row, ticker in enumerate(tickers):
        actual = closes[closes["ticker"] == ticker]
        axis = TradingAxis.of(actual["ts"])
        returns = fig.add_subplot(grid[row * 5 : row * 5 + 2, 0])
        running = fig.add_subplot(grid[row * 5 + 2, 0], sharex=returns)
        price = fig.add_subplot(grid[row * 5 + 3 : row * 5 + 5, 0], sharex=returns)
        mine = scored[scored["ticker"] == ticker]
        x = axis.position(mine["ts"])
        returns.plot(
            x, 1e4 * (mine["actual"] / mine["naive"] - 1), color=ACTUAL, lw=0.8, label="actual return"
        )
        returns.plot(
            x, 1e4 * (mine["yhat"] / mine["naive"] - 1), color=PREDICTED, lw=0.8, label="predicted return"
        )
        returns.axhline(0, color=NAIVE, lw=0.8, ls="--")
        returns.set_title(ticker, loc="left", fontweight="bold")
        returns.set_ylabel("return, bp")
        returns.legend(loc="upper left", fontsize=8, frameon=False)
        band = ratio.loc[mine.index]  # empty for a ticker with no scored model forecast yet
        running.fill_between(x, band["low"], band["high"], color=BAND, alpha=0.6, lw=0, label="95% band")
        running.plot(x, band["ratio"], color=PREDICTED, lw=1.2, label="running MSE / naive")
        running.axhline(1.0, color=NAIVE, lw=1, ls="--")
        running.set_ylabel("MSE / naive")
        running.legend(loc="upper right", fontsize=7, frameon=False)
        forecast = predictions[predictions["ticker"] == ticker]
        next_minute = forecast[_horizons(forecast) == 1]
        price.plot(axis.position(actual["ts"]), actual["close"], color=ACTUAL, lw=1.0, label="actual close")
        price.plot(axis.position(next_minute["ts"]), next_minute["yhat"], color=PREDICTED, lw=0.6, alpha=0.8,
                   label="next minute's prediction")  # fmt: skip
        _range_fan(price, axis, actual, forecast)
        if held.get(ticker):
            price.set_title(f"closes inside the 80% range: {_held(held[ticker])}", loc="right", fontsize=8)
        price.set_ylabel("price")
        price.legend(loc="upper left", fontsize=8, frameon=False)
        positions, labels = axis.ticks()
        for axes in (returns, running, price):
            _mark_gaps(axes, axis)
            axes.grid(alpha=0.25)
        price.set_xticks(positions, labels, fontsize=8)
        price.set_xlabel("trading minutes (UTC); dotted lines: gaps closed up")
    return fig


def draw_portfolio(wide: pd.DataFrame) -> Figure:
    """The merged portfolio as an equal-weight index (each ticker rebased to 100 at its first close)."""
    fig, axes = plt.subplots(figsize=(11, 3.2), dpi=100, layout="constrained")
    # Display only: carry a ticker's last close over minutes it did not trade, as a holder's book would.
    filled = wide.ffill()
    rebased = filled / filled.bfill().iloc[0] * 100
    axis = TradingAxis.of(pd.Series(rebased.index))
    axes.plot(axis.position(pd.Series(rebased.index)), rebased.mean(axis=1).to_numpy(), color=ACTUAL, lw=1.5)
    axes.set_title("Portfolio, equal weight (rebased to 100)", loc="left", fontweight="bold")
    _mark_gaps(axes, axis)
    axes.grid(alpha=0.25)
    positions, labels = axis.ticks()
    axes.set_xticks(positions, labels, fontsize=8)
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _number(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return format(value * scale, spec)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>Nothing scored yet: a minute is scored once its final bar is stored.</p>"
    heads = ("ticker", "forecaster", "scored", "coverage", "MSE ratio to naive", "CW p", "DM p", "MAE bp",
             "direction right (95% CI)", "moves", "verdict")  # fmt: skip
    body = []
    for row in rows:
        verdict = str(row.get("verdict") or "")
        style = {"beats naive": "better", "worse than naive": "worse"}.get(verdict, "")
        low, high = row.get("directional_ci_low"), row.get("directional_ci_high")
        ci = f"{_number(low, '.1%')}–{_number(high, '.1%')}"
        cells = [
            html.escape(str(row["ticker"])), html.escape(str(row["forecaster"])), str(row.get("n", "–")),
            _number(row.get("coverage"), ".1%"), _number(row.get("mse_ratio"), ".3f"),
            _number(row.get("cw_p"), ".3g"), _number(row.get("dm_p"), ".3g"),
            _number(row.get("mae_model"), ".2f", 1e4),
            f"{_number(row.get('directional_accuracy'), '.1%')} ({ci})", str(row.get("directional_n") or "–"),
            f"<span class='{style}'>{html.escape(verdict)}</span>",
        ]  # fmt: skip
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _ranges_table(cover: dict[int, Coverage]) -> str:
    if not cover:
        return "<p>No range scored yet: a range is scored once the final bar of its minute is stored.</p>"
    body = []
    for h, c in sorted(cover.items()):
        low, high = c.interval95
        cells = [
            f"{h} min",
            f"{c.n:,}",
            _number(c.share, ".1%"),
            f"{low:.1%}–{high:.1%}",
            str(c.below),
            str(c.above),
        ]
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    heads = ("horizon", "ranges scored", "closes inside", "95% CI", "below", "above")
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(
    *,
    title: str,
    since: datetime,
    until: datetime,
    charts: list[bytes],
    rows: list[dict[str, Any]],
    counts: dict[str, int],
    ranges: dict[int, Coverage] | None = None,
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
<h2>Forecasts against naive (next close = last close) and a linear AR baseline</h2>
<p>Errors relative to the last close. "Beats naive" needs the one-sided Clark-West test at p &lt; 0.05
(naive is nested in the model, where the Diebold-Mariano test is undersized); "worse than naive" needs the
two-sided Diebold-Mariano test at p &lt; 0.05; both with a Newey-West variance. Coverage is the share
of scorable minutes the model forecast; naive stand-ins are never scored as the model's.</p>
{_table(rows)}
<h2>80% ranges, per horizon (every ticker pooled)</h2>
<p>The share of final closes inside the ranges published for them, with its 95% Wilson interval; an 80%
range should hold about 80%. Ranges more than a minute ahead overlap, so nearby misses come together.</p>
{_ranges_table(ranges or {})}
{images}
</body></html>
"""
