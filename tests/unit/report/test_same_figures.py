"""One set of predictions, four readers: the live view, ``portfolio report``, ``portfolio evaluate`` and the
trainer's walk-forward metrics print the same figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.pipeline.view import score_rows
from services.report.page import write_report
from services.scoring.score import POOLED
from services.scoring.tables import rows_from_frames, table
from services.scoring.walk_forward import Pending, WalkForward

T0 = pd.Timestamp("2026-11-25T14:30:00Z")
VERSION = "per_stock-return-abcd1234.3"


def recording() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    closes, preds = [], []
    for j, ticker in enumerate(["AAA", "BBB", "CCC"]):
        price = (20 + 90 * j) * np.exp(np.cumsum(0.001 * rng.standard_normal(200)))
        for i in range(200):
            closes.append(
                {"ticker": ticker, "ts": T0 + pd.Timedelta(minutes=i), "close": price[i], "final": i < 199}
            )
            if i:
                version = "naive-warmup" if i in (5, 6) else VERSION
                yhat = (
                    price[i - 1]
                    if version == "naive-warmup"
                    else price[i - 1] * (1 + 0.0004 * rng.standard_normal())
                )
                at = T0 + pd.Timedelta(minutes=i)
                before = at - pd.Timedelta(minutes=1)
                preds.append({"ticker": ticker, "ts": at, "yhat": yhat, "based_on_ts": before,
                              "model_version": version})  # fmt: skip
    return pd.DataFrame(closes), pd.DataFrame(preds)


def test_view_report_evaluate_and_metrics_print_identical_figures(tmp_path: Path) -> None:
    closes, preds = recording()
    evaluate = {r["ticker"]: r for r in rows_from_frames(closes, preds) if r["forecaster"] == "model"}

    view_rows, view_pooled = score_rows(["AAA", "BBB", "CCC"], closes, preds)
    assert view_pooled == evaluate[POOLED]["mse_ratio"]
    assert {r.ticker: (r.mse_ratio, r.scored) for r in view_rows} == {
        t: (evaluate[t]["mse_ratio"], evaluate[t]["n"]) for t in ("AAA", "BBB", "CCC")
    }

    page = tmp_path / "report.html"
    assert write_report(page, closes, preds, title="t") == evaluate[POOLED]["n"]
    html = page.read_text()
    for t in ("AAA", "BBB", "CCC", POOLED):
        assert f"{evaluate[t]['mse_ratio']:.3f}" in html and f"{evaluate[t]['dm_p']:.3g}" in html

    walk = WalkForward()
    close_of = {(r.ticker, r.ts): r.close for r in closes.itertuples()}
    final = {(r.ticker, r.ts) for r in closes.itertuples() if r.final}
    for p in preds.itertuples():
        if (p.ticker, p.ts) in final:
            standin = p.model_version.startswith("naive")
            pending = Pending(close_of[(p.ticker, p.based_on_ts)], p.yhat, "abcd1234", VERSION, None, standin)
            minute = int((p.ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1))
            walk.add(p.ticker, pending, close_of[(p.ticker, p.ts)], minute)
    metrics = walk.pooled("abcd1234").summary()
    for key in ("n", "standins", "coverage", "mse_ratio", "dm_p", "mae_model", "directional_accuracy"):
        assert metrics[key] == pytest.approx(evaluate[POOLED][key]), key
    assert evaluate[POOLED]["standins"] == 6 and f"{evaluate[POOLED]['mse_ratio']:.4f}" in table(
        list(evaluate.values())
    )
