"""The model-vs-naive table of ``portfolio evaluate``, from stored metrics or from bars + predictions."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np
from pymongo.database import Database

from services.trainer.evaluation import Score
from services.trainer.metrics_store import POOLED, read_metrics
from shared.mongo import BARS, PREDICTIONS

COLUMNS = (
    ("lineage", "lineage", "{}"),
    ("ticker", "ticker", "{}"),
    ("n", "n", "{}"),
    ("mse_ratio", "MSE/naive", "{:.4f}"),
    ("mae_model", "MAE model", "{:.4f}"),
    ("mae_naive", "MAE naive", "{:.4f}"),
    ("directional_accuracy", "direction", "{:.3f}"),
    ("directional_n", "moves", "{}"),
    ("directional_ci_low", "CI low", "{:.3f}"),
    ("directional_ci_high", "CI high", "{:.3f}"),
)


def _lineage(model_version: str) -> str:
    return model_version.rsplit(".", 1)[0].rsplit("-", 1)[-1]


def rows_from_metrics(db: Database[dict[str, Any]], kind: str, lineage: str | None) -> list[dict[str, Any]]:
    rows = read_metrics(db, kind, lineage)
    return sorted(rows, key=lambda r: (str(r.get("lineage")), r["ticker"] == POOLED, r["ticker"]))


def rows_from_predictions(db: Database[dict[str, Any]], lineage: str | None) -> list[dict[str, Any]]:
    """Score every stored prediction whose minute has a stored bar, against that bar's close, and the naive
    forecast (the close of ``based_on_ts``)."""
    closes: dict[tuple[str, datetime], float] = {
        (d["ticker"], d["ts"]): float(d["close"])
        for d in db[BARS].find({}, {"_id": 0, "ticker": 1, "ts": 1, "close": 1})
    }
    scores: dict[tuple[str, str], Score] = defaultdict(Score)
    for p in db[PREDICTIONS].find({}, {"_id": 0}):
        version = str(p.get("model_version", ""))
        if version.startswith("naive"):
            continue
        lin = _lineage(version)
        if lineage and lin != lineage:
            continue
        actual = closes.get((p["ticker"], p["ts"]))
        last = closes.get((p["ticker"], p["based_on_ts"]))
        if actual is None or last is None:
            continue
        for ticker in (p["ticker"], POOLED):
            scores[(lin, ticker)].add(np.array([last]), np.array([float(p["yhat"])]), np.array([actual]))
    return [
        {"lineage": lin, "ticker": t} | s.summary()
        for (lin, t), s in sorted(scores.items(), key=lambda kv: (kv[0][0], kv[0][1] == POOLED, kv[0][1]))
    ]


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no scores stored yet"
    cells = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        cells.append([fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    note = (
        "MSE/naive < 1 beats the naive forecast (next close = last close); "
        "direction counts moved minutes only."
    )
    return "\n".join([*lines, "", note])
