from __future__ import annotations

import math

import pandas as pd
import pytest

from services.scoring.predictions import running_ratio, score_predictions, scores_by_ticker, summary_rows
from services.scoring.score import POOLED
from services.scoring.walk_forward import Pending, WalkForward
from shared.settings import PORTFOLIO_SERIES

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


def test_the_portfolios_value_is_scored_as_its_own_series_never_pooled() -> None:
    bars = pd.concat([closes("AAPL", [100.0, 101.0, 101.0]), closes(PORTFOLIO_SERIES, [100.0, 90.0, 95.0])])
    preds = pd.concat(
        [predictions("AAPL", {1: 100.5, 2: 101.2}), predictions(PORTFOLIO_SERIES, {1: 99.0, 2: 91.0})]
    )
    scores = scores_by_ticker(score_predictions(bars, preds))
    assert scores[PORTFOLIO_SERIES].n == 2 and scores[POOLED].n == 2 == scores["AAPL"].n
    assert scores[POOLED].summary()["mse_ratio"] == scores["AAPL"].summary()["mse_ratio"]
    alone = scores_by_ticker(score_predictions(bars, predictions(PORTFOLIO_SERIES, {1: 99.0, 2: 91.0})))
    assert set(alone) == {PORTFOLIO_SERIES}  # no pool of no ticker


def test_walk_forward_pools_the_tickers_only() -> None:
    walk = WalkForward()
    for t, (last, yhat, actual) in {
        "AAPL": (100.0, 100.5, 101.0),
        PORTFOLIO_SERIES: (100.0, 99.0, 101.0),
    }.items():
        walk.add(t, Pending(last, yhat, "L", "v1", baseline=last), actual, minute=7)
    assert walk.scores[(PORTFOLIO_SERIES, "L")].n == 1
    assert walk.pooled("L").n == 1 == walk.pooled_baseline("L").n
    assert walk.pooled("L").summary()["mse_ratio"] == walk.scores[("AAPL", "L")].summary()["mse_ratio"]


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


def test_only_the_next_minutes_predictions_are_scored_as_point_forecasts() -> None:
    bars = closes("AAPL", [100.0, 101.0, 103.0, 104.0], final_upto=4)
    one = predictions("AAPL", {1: 100.5, 2: 102.0})
    # A 2-minute forecast of minute 2 made at minute 0, and a stored prediction of the earlier form.
    longer = pd.DataFrame({"ticker": "AAPL", "ts": [minute(2)], "yhat": [90.0], "based_on_ts": [minute(0)],
                           "model_version": "v1", "horizon_min": [2]})  # fmt: skip
    mixed = pd.concat([one.assign(horizon_min=[1, None]), longer], ignore_index=True)
    scored = score_predictions(bars, mixed)
    assert list(scored["yhat"]) == [100.5, 102.0]
    assert list(scored["naive"]) == [100.0, 101.0]
