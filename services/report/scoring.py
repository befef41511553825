"""Score stored predictions against what happened, and against the naive forecast (no I/O).

The naive forecast of a minute's close is the close of the bar the prediction was based on. A prediction
is scored only once its minute has a final bar, as the trainer's walk-forward evaluation does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORED_COLUMNS = ["ticker", "ts", "yhat", "actual", "naive", "model_version"]
SUMMARY_COLUMNS = ["ticker", "n", "mse_ratio", "mae_model", "mae_naive", "directional_accuracy", "moves"]


def score_predictions(closes: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Join predictions (ticker, ts, yhat, based_on_ts, model_version) with closes (ticker, ts, close, final).

    Returns one row per scorable prediction with ``actual`` (final close of ``ts``) and ``naive`` (close of
    ``based_on_ts``), ordered by ticker and time.
    """
    if closes.empty or predictions.empty:
        return pd.DataFrame(columns=SCORED_COLUMNS)
    final = closes.loc[closes["final"], ["ticker", "ts", "close"]]
    scored = predictions.merge(final.rename(columns={"close": "actual"}), on=["ticker", "ts"], how="inner")
    scored = scored.merge(
        closes[["ticker", "ts", "close"]].rename(columns={"ts": "based_on_ts", "close": "naive"}),
        on=["ticker", "based_on_ts"],
        how="inner",
    )
    return scored[SCORED_COLUMNS].sort_values(["ticker", "ts"]).reset_index(drop=True)


def running_mse_ratio(scored: pd.DataFrame) -> pd.Series:
    """Cumulative MSE of the model over cumulative MSE of naive, per ticker, in time order.

    Below 1 the model has beaten "next close = last close" so far; NaN while naive has made no error yet.
    """
    model_sq = ((scored["yhat"] - scored["actual"]) ** 2).astype(float)
    naive_sq = ((scored["naive"] - scored["actual"]) ** 2).astype(float)
    by_ticker = scored["ticker"]
    cum_model = model_sq.groupby(by_ticker).cumsum()
    cum_naive = naive_sq.groupby(by_ticker).cumsum()
    return (cum_model / cum_naive.where(cum_naive > 0)).rename("mse_ratio")


def summary_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Per ticker and pooled: predictions scored, MSE ratio to naive, MAE of both, directional accuracy.

    Directional accuracy counts only minutes that moved (actual != naive); a flat minute has no direction.
    """
    rows = []
    groups = [(str(t), g) for t, g in scored.groupby("ticker", sort=True)]
    if len(groups) > 1:
        groups.append(("(pooled)", scored))
    for ticker, group in groups:
        err_model = group["yhat"] - group["actual"]
        err_naive = group["naive"] - group["actual"]
        moved = group["actual"] != group["naive"]
        hits = (
            np.sign(group["yhat"] - group["naive"])[moved] == np.sign(group["actual"] - group["naive"])[moved]
        )
        mse_naive = float((err_naive**2).mean())
        rows.append(
            {
                "ticker": ticker,
                "n": len(group),
                "mse_ratio": float((err_model**2).mean()) / mse_naive if mse_naive > 0 else float("nan"),
                "mae_model": float(err_model.abs().mean()),
                "mae_naive": float(err_naive.abs().mean()),
                "directional_accuracy": float(hits.mean()) if moved.any() else float("nan"),
                "moves": int(moved.sum()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
