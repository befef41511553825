from __future__ import annotations

import math

import pandas as pd
import pytest

from services.scoring.predictions import running_ratio, score_predictions, scores_by_ticker, summary_rows
from services.scoring.score import POOLED

T0 = pd.Timestamp("2026-11-25T14:30:00Z")


def minute(i: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=i)


def closes(ticker: str, values: list[float], final_upto: int | None = None) -> pd.DataFrame:
    n = len(values)
    final_upto = n if final_upto is None else final_upto
    return pd.DataFrame(
        {
            "ticker": ticker,
            "ts": [minute(i) for i in range(n)],
            "close": values,
            "final": [i < final_upto for i in range(n)],
        }
    )


def predictions(ticker: str, yhats: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ticker,
            "ts": [minute(i) for i in yhats],
            "yhat": list(yhats.values()),
            "based_on_ts": [minute(i - 1) for i in yhats],
            "model_version": "v1",
        }
    )


def test_predictions_are_scored_only_against_final_bars_with_the_last_close_as_naive() -> None:
    bars = closes("AAPL", [100.0, 101.0, 103.0, 104.0], final_upto=3)  # minute 3 still in progress
    scored = score_predictions(bars, predictions("AAPL", {1: 100.5, 2: 102.0, 3: 104.0}))
    assert list(scored["ts"]) == [minute(1), minute(2)]
    assert list(scored["naive"]) == [100.0, 101.0]
    assert list(scored["actual"]) == [101.0, 103.0]


def test_running_ratio_is_below_one_when_the_model_beats_naive_and_per_ticker() -> None:
    bars = pd.concat([closes("AAPL", [100.0, 101.0, 102.0]), closes("MSFT", [50.0, 49.0, 48.0])])
    good = predictions("AAPL", {1: 101.0, 2: 101.5})  # errors 0 and 0.5 vs naive 1 and 1
    bad = predictions("MSFT", {1: 51.0, 2: 50.0})  # errors 2 and 2 vs naive 1 and 1
    scored = score_predictions(bars, pd.concat([good, bad]))
    ratio = running_ratio(scored)["ratio"]
    aapl = ratio[scored["ticker"] == "AAPL"].tolist()
    msft = ratio[scored["ticker"] == "MSFT"].tolist()
    # Relative errors (of the last close): AAPL (0.5/101)² / ((1/100)² + (1/101)²).
    assert aapl == pytest.approx([0.0, (0.5 / 101) ** 2 / ((1 / 100) ** 2 + (1 / 101) ** 2)])
    assert msft == pytest.approx([4.0, 4.0])


def test_summary_pools_tickers_and_counts_direction_only_on_moves() -> None:
    bars = pd.concat([closes("AAPL", [100.0, 101.0, 101.0]), closes("MSFT", [50.0, 49.0, 48.0])])
    preds = pd.concat([predictions("AAPL", {1: 100.5, 2: 101.2}), predictions("MSFT", {1: 50.5, 2: 47.5})])
    table = {r["ticker"]: r for r in summary_rows(scores_by_ticker(score_predictions(bars, preds)))}
    assert table["AAPL"]["directional_n"] == 1  # minute 2 did not move: no direction to get right
    assert table["AAPL"]["directional_accuracy"] == 1.0
    assert table["MSFT"]["directional_accuracy"] == 0.5
    assert table[POOLED]["n"] == 4
    ratio = table["AAPL"]["mse_ratio"]
    assert isinstance(ratio, float) and not math.isnan(ratio)


def test_nothing_scored_yet_gives_an_empty_table_with_its_columns() -> None:
    empty = score_predictions(closes("AAPL", [100.0, 101.0]), predictions("AAPL", {}))
    assert summary_rows(scores_by_ticker(empty)) == []
    assert "ticker" in empty.columns
    assert running_ratio(empty).empty


def test_every_lineage_scores_a_retraining_model_as_one_with_its_stand_ins() -> None:
    from services.scoring.tables import rows_from_frames

    bars = closes("AAPL", [100.0 + (i % 3) for i in range(12)])
    preds = predictions("AAPL", {i: 100.0 + ((i - 1) % 3) + 0.1 for i in range(1, 12)})
    preds["model_version"] = (
        ["naive-warmup"] * 2
        + ["per_stock-return-aaaa1111.0"] * 4
        + ["naive-warmup"]
        + ["per_stock-return-bbbb2222.0"] * 4
    )
    split = {
        (r["lineage"], r["forecaster"]): r for r in rows_from_frames(bars, preds) if r["ticker"] == POOLED
    }
    joined = [r for r in rows_from_frames(bars, preds, every_lineage=True) if r["forecaster"] == "model"]
    assert {lin for lin, _ in split} == {"aaaa1111", "bbbb2222"}
    assert {r["lineage"] for r in joined} == {"all"}
    pooled = next(r for r in joined if r["ticker"] == POOLED)
    # Eight model forecasts in all; the stand-in between the lineages counts against coverage, the two
    # before the first model forecast do not.
    assert pooled["n"] == 8 and pooled["standins"] == 1
    assert pooled["n"] == sum(split[(lin, "model")]["n"] for lin in ("aaaa1111", "bbbb2222"))
