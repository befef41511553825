"""The model-vs-baselines table of ``portfolio evaluate`` and ``portfolio backtest``, from stored metrics,
from stored bars + predictions, or from a backtest's frames. Scores come from :mod:`services.scoring.score`
only."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pymongo.database import Database

from services.scoring.predictions import (
    coverage_summary,
    interval_coverage,
    score_predictions,
    scores_by_ticker,
    summary_rows,
)
from services.scoring.score import POOLED, Score
from services.scoring.stored import load_closes, load_predictions, read_metrics

COLUMNS = (
    ("lineage", "lineage", "{}"),
    ("ticker", "ticker", "{}"),
    ("forecaster", "forecaster", "{}"),
    ("n", "n", "{}"),
    ("coverage", "coverage", "{:.1%}"),
    ("mse_ratio", "MSE/naive", "{:.4f}"),
    ("cw_p", "CW p", "{:.3g}"),
    ("dm_p", "DM p", "{:.3g}"),
    ("mae_model", "MAE bp", "{:.3f}"),
    ("directional_accuracy", "direction", "{:.3f}"),
    ("directional_n", "moves", "{}"),
    ("directional_ci_low", "CI low", "{:.3f}"),
    ("directional_ci_high", "CI high", "{:.3f}"),
    ("verdict", "verdict", "{}"),
    ("in80", "in 80%", "{:.1%}"),
    ("in80_ci_low", "in80 low", "{:.1%}"),
    ("in80_ci_high", "in80 high", "{:.1%}"),
)
NOTE = (
    "Errors relative to the last close; MSE/naive < 1 is a lower error than next close = last close. "
    "'beats naive' (verdict) is claimed only when that ratio is below 1 and the one-sided Clark-West test "
    "(naive is nested in the model) gives p < 0.05; 'worse than naive' when the ratio is above 1 and the "
    "two-sided Diebold-Mariano test does; both with a Newey-West variance. MAE in basis "
    "points of the last close. Direction: moved minutes only, 95% Wilson interval. Coverage: share of the "
    "scorable minutes the model forecast (the rest were naive stand-ins, never scored as the model's). "
    "In 80%: share of actual closes inside the forecast's 10-90% interval (goal 78-82%), 95% Wilson interval."
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END = datetime(2200, 1, 1, tzinfo=UTC)


def lineage_of(model_version: str) -> str:
    return model_version.rsplit(".", 1)[0].rsplit("-", 1)[-1]


def _with_baselines(rows: list[dict[str, Any]], naive_mae: bool = True) -> list[dict[str, Any]]:
    """Each model row, then its AR row (from ``ar_*`` fields) and, for the pool, the naive row."""
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(row | {"forecaster": "model"})
        if row.get("ar_n"):
            ar = {k[3:]: v for k, v in row.items() if k.startswith("ar_")}
            out.append({"lineage": row.get("lineage"), "ticker": row["ticker"], "forecaster": "AR"} | ar)
        if naive_mae and row["ticker"] == POOLED and row.get("mae_naive") is not None:
            out.append(
                {"lineage": row.get("lineage"), "ticker": POOLED, "forecaster": "naive", "n": row["n"],
                 "mse_ratio": 1.0, "mae_model": row["mae_naive"]}
            )  # fmt: skip
    return out


def rows_from_metrics(db: Database[dict[str, Any]], kind: str, lineage: str | None) -> list[dict[str, Any]]:
    rows = read_metrics(db, kind, lineage)
    rows.sort(
        key=lambda r: (str(r.get("lineage")), str(r.get("model_version")), r["ticker"] == POOLED, r["ticker"])
    )
    return _with_baselines(rows)


def rows_from_frames(
    closes: pd.DataFrame,
    predictions: pd.DataFrame,
    lineage: str | None = None,
    *,
    every_lineage: bool = False,
) -> list[dict[str, Any]]:
    """Score predictions (ticker, ts, based_on_ts, yhat, model_version[, ar_yhat]) against final closes,
    per lineage (``every_lineage``: all of the model's lineages as one, lineage ``all``: what a user of a
    trainer that retrains got); naive stand-ins count towards the coverage of the lineage that was serving."""
    scored = score_predictions(closes, predictions)
    if scored.empty:
        return []
    versions = scored["model_version"].astype(str)
    standin = versions.str.startswith("naive")
    keys = pd.Series("all", index=versions.index) if every_lineage else versions.map(lineage_of)
    lineages = sorted(set(keys[~standin]))
    if lineage:
        lineages = [lin for lin in lineages if lin == lineage]
    rows: list[dict[str, Any]] = []
    for lin in lineages:
        mine = scored[~standin & (keys == lin)]
        # Stand-ins count against the model once it exists (before, there was nothing to cover).
        standins = scored[standin & (scored["ts"] > mine["ts"].min())]
        scores = scores_by_ticker(pd.concat([mine, standins]) if len(lineages) == 1 else mine)
        baselines = _baseline_scores(mine, predictions)
        covers = interval_coverage(mine)
        for summary in summary_rows(scores, lineage=lin):
            row = dict(summary)
            if covers:
                row |= coverage_summary(covers.get(str(row["ticker"])))
            extra = baselines.get(str(row["ticker"]))
            if extra is not None:
                row |= {f"ar_{k}": v for k, v in extra.summary().items()}
            rows.append(row)
    return _with_baselines(rows)


def _baseline_scores(scored: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, Score]:
    if "ar_yhat" not in predictions.columns:
        return {}
    ar = predictions[["ticker", "ts", "ar_yhat"]].dropna()
    joined = scored.merge(ar, on=["ticker", "ts"], how="inner")
    if joined.empty:
        return {}
    return scores_by_ticker(joined.assign(yhat=joined["ar_yhat"]))


def rows_from_predictions(db: Database[dict[str, Any]], lineage: str | None) -> list[dict[str, Any]]:
    """Every stored prediction whose minute has a final stored bar, scored as :func:`rows_from_frames`."""
    predictions = load_predictions(db, None, _EPOCH, _END)
    if predictions.empty:
        return []
    # Only the bars the predictions are scored against: their span, not the whole history.
    since = predictions["based_on_ts"].min().to_pydatetime()
    until = predictions["ts"].max().to_pydatetime() + timedelta(minutes=1)
    return rows_from_frames(load_closes(db, None, since, until), predictions, lineage)


def cell(row: dict[str, Any], key: str, fmt: str) -> str:
    """One cell of the table as `portfolio evaluate` prints it (the dashboard shows the same text)."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "mae_model":
        value = float(value) * 1e4
    return fmt.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no scores yet"
    columns = [c for c in COLUMNS if c[0] != "lineage" or any(r.get("lineage") for r in rows)]
    cells = [[title for _, title, _ in columns]]
    cells += [[cell(row, key, fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([*lines, "", NOTE])
