"""The backtest's table per horizon: the trainer's ranges against both baselines, fitted on the same part of
the cold start's history, all scored by the one scorer (:func:`services.scoring.range_score.score_ranges`),
and the point forecast's MSE ratio to naive with Clark-West. No I/O.

Rows are the based-on minutes at which the trainer forecast the horizon; the baselines are scored on the
same rows (their ranges from the returns up to the row only). The portfolio series (``PORTFOLIO_SERIES``)
is scored on its own, never pooled with the tickers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.scoring.coverage import Coverage
from services.scoring.panel import ScorePanels
from services.scoring.range_score import RangeScore, score_ranges
from services.scoring.score import POOLED, Score, add_to_panels, pool
from services.trainer.intervals.ewma_baseline import EwmaProfileBaseline
from services.trainer.intervals.mcs_garch import McsGarchBaseline
from services.trainer.intervals.range_grid import Grid, epoch_minutes, grid_of
from services.trainer.intervals.range_state import TRAIN_SHARE
from shared.session import SessionClock
from shared.settings import PORTFOLIO_SERIES

BASELINES = ("EWMA", "GARCH")


@dataclass(frozen=True)
class HorizonRow:
    horizon: int
    series: str  # POOLED, PORTFOLIO_SERIES or a ticker
    forecaster: str  # "model" or a baseline's name
    coverage: Coverage
    kupiec_p: float | None  # on ranges h minutes apart (independent hits) for h > 1
    christoffersen_p: float | None
    interval_score: float | None
    # Per baseline: interval-score ratio and its DM p; pinball ratios at q10 and q90 (model rows only).
    versus: dict[str, tuple[float | None, float | None, float | None, float | None]]
    # The lowest and highest share inside over the tickers and over the 30-minute buckets of the session.
    tickers: tuple[float, float] | None = None
    buckets: tuple[float, float] | None = None
    mse_ratio: float | None = None
    clark_west_p: float | None = None


def _model_arrays(grid: Grid, predictions: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
    """The trainer's forecasts of one horizon on the grid, by based-on minute ``[rows, tickers]``."""
    rows = predictions[predictions["horizon_min"] == horizon]
    at = grid.row_of(epoch_minutes(rows["based_on_ts"]))
    column = {t: j for j, t in enumerate(grid.tickers)}
    col = np.array([column.get(t, -1) for t in rows["ticker"]], np.int64)
    keep = (at >= 0) & (col >= 0)
    out = {}
    for name in ("q10", "q90", "yhat"):
        values = np.full(grid.close.shape, np.nan)
        values[at[keep], col[keep]] = pd.to_numeric(rows[name], errors="coerce").to_numpy(np.float64)[keep]
        out[name] = values
    return out


def _rows(score: RangeScore, series: str, forecaster: str, horizon: int) -> HorizonRow:
    key = POOLED if POOLED in score.coverage and series == POOLED else series
    kupiec = score.kupiec_spaced if horizon > 1 else score.kupiec
    markov = score.christoffersen_spaced if horizon > 1 else score.christoffersen
    versus = {
        name: (
            r["interval_score"].ratio,
            r["interval_score"].dm_p,
            r["pinball_q10"].ratio,
            r["pinball_q90"].ratio,
        )
        for name, r in score.versus.items()
    }
    shares = [c.share for t, c in score.coverage.items() if t != POOLED and c.share is not None]
    buckets = [c.share for c in score.buckets.values() if c.share is not None]
    return HorizonRow(
        horizon, series, forecaster, score.coverage[key], kupiec[key][1], markov[key][1],
        score.interval_score, versus, _span(shares), _span(buckets),
    )  # fmt: skip


def _span(values: list[float]) -> tuple[float, float] | None:
    return (min(values), max(values)) if values else None


def horizon_table(
    bars: pd.DataFrame,
    predictions: pd.DataFrame,
    boundary: int,
    horizons: Sequence[int],
    session: SessionClock,
) -> list[HorizonRow]:
    """``bars``: the recording (with the portfolio's bars, if any); ``boundary``: the first epoch minute
    after the cold start's history; ``session``: the clock the model was fitted by (the baselines and the
    scorer's buckets follow it too)."""
    grid = grid_of(bars, session)
    train = slice(0, int(np.sum(grid.minutes < boundary) * TRAIN_SHARE))
    r, m = grid.returns, grid.session_minute
    baselines: dict[str, EwmaProfileBaseline | McsGarchBaseline] = {
        "EWMA": EwmaProfileBaseline.fit(r[train], m[train], horizons, length=session.length),
        "GARCH": McsGarchBaseline.fit(r[train], m[train], horizons, length=session.length),
    }
    groups = [[j for j, t in enumerate(grid.tickers) if t != PORTFOLIO_SERIES]]
    if PORTFOLIO_SERIES in grid.tickers:
        groups.append([grid.tickers.index(PORTFOLIO_SERIES)])
    out = []
    for h in horizons:
        model = _model_arrays(grid, predictions, h)
        made = np.isfinite(model["q10"]) & np.isfinite(model["q90"])
        actual = grid.ahead(h)
        ranges = {}
        for name, baseline in baselines.items():
            low, high = baseline.predict_interval(grid.close, r, m, h)
            ranges[name] = (np.where(made, low, np.nan), np.where(made, high, np.nan))
        for k, cols in enumerate(groups):
            series = POOLED if k == 0 and len(cols) > 1 else grid.tickers[cols[0]]
            scored = _Scored(grid, h, cols, actual)
            row = _rows(scored.score(model["q10"], model["q90"], ranges), series, "model", h)
            out.append(_with_point(row, grid, model["yhat"][:, cols], actual[:, cols], cols))
            out.extend(_rows(scored.score(lo, hi, None), series, n, h) for n, (lo, hi) in ranges.items())
    return out


@dataclass(frozen=True)
class _Scored:
    """One horizon's scoring of some columns of the grid."""

    grid: Grid
    horizon: int
    cols: list[int]
    actual: np.ndarray

    def score(
        self, low: np.ndarray, high: np.ndarray, versus: dict[str, tuple[np.ndarray, np.ndarray]] | None
    ) -> RangeScore:
        c, g = self.cols, self.grid
        against = {n: (lo[:, c], hi[:, c]) for n, (lo, hi) in versus.items()} if versus else None
        names = [g.tickers[j] for j in c]
        return score_ranges(self.horizon, g.minutes + self.horizon, g.close[:, c], low[:, c], high[:, c],
                            self.actual[:, c], names, g.session, against)  # fmt: skip


def _with_point(
    row: HorizonRow, grid: Grid, yhat: np.ndarray, actual: np.ndarray, cols: list[int]
) -> HorizonRow:
    last, minutes = grid.close[:, cols], grid.minutes + row.horizon
    scores, panels = [], ScorePanels()
    for j in range(len(cols)):
        score = Score()
        score.add(last[:, j], yhat[:, j], actual[:, j])
        add_to_panels(panels, minutes, last[:, j], yhat[:, j], actual[:, j])
        scores.append(score)
    pooled = pool(scores, panels)
    _, p = pooled.clark_west()
    return HorizonRow(**{**row.__dict__, "mse_ratio": pooled.mse_ratio, "clark_west_p": p})


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def _spread(span: tuple[float, float] | None) -> str:
    return "-" if span is None else f"{span[0]:.1%}-{span[1]:.1%}"


def format_table(rows: Sequence[HorizonRow]) -> str:
    """One line per (horizon, series, forecaster): n, share inside with its Wilson interval, the lowest and
    highest share over the tickers and over the 30-minute buckets, Kupiec and Christoffersen p (on ranges
    h minutes apart for h > 1), the mean interval score in basis points of the last close, per baseline
    the ratios of interval score (with DM p) and pinball loss at q10 and q90, the point forecast's MSE
    ratio to naive and its Clark-West p."""
    frame = pd.DataFrame(
        [
            {
                "h": row.horizon,
                "series": row.series,
                "forecaster": row.forecaster,
                "n": row.coverage.n,
                "in 80%": _fmt(row.coverage.share, ".1%"),
                "95% CI": "-" if not row.coverage.n else "{:.1%}-{:.1%}".format(*row.coverage.interval95),
                "tickers": _spread(row.tickers),
                "buckets": _spread(row.buckets),
                "Kupiec p": _fmt(row.kupiec_p, ".3g"),
                "Chr. p": _fmt(row.christoffersen_p, ".3g"),
                "IS bp": _fmt(None if row.interval_score is None else row.interval_score * 1e4, ".2f"),
                **{
                    f"{col} {name}": _fmt(v[k] if (v := row.versus.get(name)) else None, spec)
                    for name in BASELINES
                    for k, (col, spec) in enumerate(
                        (("IS/", ".4f"), ("DM p", ".2g"), ("q10/", ".4f"), ("q90/", ".4f"))
                    )
                },
                "MSE/naive": _fmt(row.mse_ratio, ".5f"),
                "CW p": _fmt(row.clark_west_p, ".2g"),
            }
            for row in rows
        ]
    )
    return frame.to_string(index=False)
