"""Scores of stored or backtested predictions (tables of ``ticker, ts, yhat, based_on_ts, model_version``)
by the one scorer (``evaluation.py``): ``portfolio evaluate``, ``portfolio report``, ``portfolio backtest``
and the live view read predictions through here. No I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.scoring.coverage import Coverage, coverage_of
from services.scoring.panel import ScorePanels
from services.scoring.score import NAIVE_PREFIX, POOLED, Score, add_to_panels, pool, pooled_series
from services.scoring.significance import Z95, newey_west_lags

SCORED_COLUMNS = ["ticker", "ts", "yhat", "actual", "naive", "model_version"]
# The forecast's 80% interval (10% and 90% quantiles of the close), where predictions carry one.
INTERVAL_COLUMNS = ["q10", "q90"]


def score_predictions(closes: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Join the next minute's predictions (ticker, ts, yhat, based_on_ts, model_version, optionally
    horizon_min) with closes (ticker, ts, close,
    final): one row per prediction whose minute has a *final* bar, with ``actual`` (that close) and
    ``naive`` (the close of ``based_on_ts``), ordered by ticker and time. Naive stand-ins are kept (they
    count towards coverage) and told apart by :func:`is_standin`."""
    if "horizon_min" in predictions.columns:
        # The next minute's forecasts (a stored prediction of the earlier form has none: it is one);
        # the longer horizons' ranges are scored by range_score.score_ranges.
        predictions = predictions[pd.to_numeric(predictions["horizon_min"]).fillna(1) == 1]
    if closes.empty or predictions.empty:
        return pd.DataFrame(columns=SCORED_COLUMNS)
    final = closes.loc[closes["final"].astype(bool), ["ticker", "ts", "close"]]
    scored = predictions.merge(final.rename(columns={"close": "actual"}), on=["ticker", "ts"], how="inner")
    scored = scored.merge(
        closes[["ticker", "ts", "close"]].rename(columns={"ts": "based_on_ts", "close": "naive"}),
        on=["ticker", "based_on_ts"],
        how="inner",
    )
    columns = SCORED_COLUMNS + [c for c in INTERVAL_COLUMNS if c in scored.columns]
    return scored[columns].sort_values(["ticker", "ts"]).reset_index(drop=True)


def is_standin(model_version: pd.Series) -> pd.Series:
    return model_version.astype(str).str.startswith(NAIVE_PREFIX)


def scores_by_ticker(scored: pd.DataFrame) -> dict[str, Score]:
    """One :class:`Score` per ticker (and the portfolio's value) and the pool of the tickers under
    :data:`POOLED` (present once any ticker is scored)."""
    out: dict[str, Score] = {}
    for ticker, group in scored.groupby("ticker", sort=True):
        standin = is_standin(group["model_version"])
        model = group[~standin]
        score = Score(standins=int(standin.sum()))
        score.add(model["naive"].to_numpy(), model["yhat"].to_numpy(), model["actual"].to_numpy())
        out[str(ticker)] = score
    scored = scored[scored["ticker"].map(pooled_series).astype(bool)] if len(scored) else scored
    if any(pooled_series(t) for t in out):
        model = scored[~is_standin(scored["model_version"])].sort_values("ts", kind="stable")
        panel = ScorePanels()
        minutes = (pd.to_datetime(model["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
            minutes=1
        )
        add_to_panels(panel, minutes.to_numpy(), *(model[c].to_numpy() for c in ("naive", "yhat", "actual")))
        out[POOLED] = pool((s for t, s in out.items() if pooled_series(t)), panel)
    return out


def interval_coverage(scored: pd.DataFrame) -> dict[str, Coverage]:
    """Share of final actual closes inside the model's 80% intervals, per ticker and pooled (:data:`POOLED`):
    :func:`~services.scoring.coverage.coverage_of`, over the forecasts that carry an interval."""
    if not set(INTERVAL_COLUMNS) <= set(scored.columns):
        return {}
    model = scored[~is_standin(scored["model_version"])].dropna(subset=INTERVAL_COLUMNS)
    if model.empty:
        return {}
    parts = [np.asarray(model[c], dtype=np.float64) for c in ("actual", "q10", "q90")]
    out = {
        str(t): coverage_of(*(p[idx] for p in parts)) for t, idx in model.groupby("ticker").indices.items()
    }
    pooled = model["ticker"].map(pooled_series).to_numpy(bool)
    out[POOLED] = coverage_of(*(p[pooled] for p in parts))
    return out


def range_coverage(closes: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, dict[int, Coverage]]:
    """Per ticker and pooled (:data:`POOLED`), per horizon: the share of final closes inside the 80% ranges
    published for them (stand-ins' ranges too: a range is centred on the last close, whoever made it).
    Predictions without ``horizon_min`` (the earlier form) are one-minute ones."""
    if closes.empty or predictions.empty or not set(INTERVAL_COLUMNS) <= set(predictions.columns):
        return {}
    ranged = predictions.dropna(subset=INTERVAL_COLUMNS)
    final = closes.loc[closes["final"].astype(bool), ["ticker", "ts", "close"]]
    joined = ranged.merge(final, on=["ticker", "ts"], how="inner")
    if joined.empty:
        return {}
    horizon = (
        pd.to_numeric(joined["horizon_min"]).fillna(1).astype(int)
        if "horizon_min" in joined.columns
        else pd.Series(1, index=joined.index)
    )
    out: dict[str, dict[int, Coverage]] = {}
    for (ticker, h), rows in joined.groupby([joined["ticker"], horizon], sort=True):
        parts = (np.asarray(rows[c], dtype=np.float64) for c in ("close", "q10", "q90"))
        out.setdefault(str(ticker), {})[int(h)] = coverage_of(*parts)
    pooled = joined["ticker"].map(pooled_series).astype(bool)
    for h, rows in joined[pooled].groupby(horizon[pooled], sort=True):
        parts = (np.asarray(rows[c], dtype=np.float64) for c in ("close", "q10", "q90"))
        out.setdefault(POOLED, {})[int(h)] = coverage_of(*parts)
    return out


def coverage_summary(cover: Coverage | None) -> dict[str, float | int | None]:
    """Plain numbers for a table row: share inside the 80% interval with its 95% Wilson interval."""
    if cover is None or not cover.n:
        return {"in80": None, "in80_n": 0, "in80_ci_low": None, "in80_ci_high": None}
    low, high = cover.interval95
    return {"in80": cover.share, "in80_n": cover.n, "in80_ci_low": low, "in80_ci_high": high}


def summary_rows(scores: dict[str, Score], **labels: object) -> list[dict[str, object]]:
    """Rows of plain values (tickers sorted, the pool last), each with ``labels`` added."""
    order = sorted(t for t in scores if t != POOLED) + ([POOLED] if POOLED in scores else [])
    return [labels | {"ticker": t} | scores[t].summary() for t in order]


def running_ratio(scored: pd.DataFrame) -> pd.DataFrame:
    """Per ticker, in time order, over the model's scored forecasts: the running MSE ratio to naive and its
    95% band (from the same Newey-West variance as the DM test). NaN while undefined."""
    model = scored[~is_standin(scored["model_version"])] if len(scored) else scored
    parts = []
    for _, group in model.groupby("ticker", sort=True):
        last = group["naive"].to_numpy(dtype=np.float64)
        e_model = (group["yhat"].to_numpy(dtype=np.float64) - group["actual"].to_numpy()) / last
        e_naive = (last - group["actual"].to_numpy(dtype=np.float64)) / last
        d = e_model**2 - e_naive**2
        n = np.arange(1, len(d) + 1)
        cum_naive = np.cumsum(e_naive**2)
        mean = np.cumsum(d) / n
        var = np.cumsum(d * d) / n - mean**2
        lags = newey_west_lags(len(d))
        for k in range(1, lags + 1):
            products = np.concatenate([np.zeros(k), np.cumsum(d[k:] * d[:-k])])
            var = var + 2 * (1 - k / (lags + 1)) * (products / n - mean**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(cum_naive > 0, 1 + np.cumsum(d) / cum_naive, np.nan)
            half = Z95 * np.sqrt(np.clip(var, 0, None) / n) * n / cum_naive
            half = np.where((cum_naive > 0) & (n >= 10), half, np.nan)
        parts.append(
            pd.DataFrame({"ratio": ratio, "low": ratio - half, "high": ratio + half}, index=group.index)
        )
    if not parts:
        return pd.DataFrame(columns=["ratio", "low", "high"], dtype=float)
    return pd.concat(parts)
