"""Scaling and windowing: fitted on the training part only, no NaN ever reaches the network."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.trainer.model.scaling import PriceScaler, ReturnScaler, Scaler
from services.trainer.model.series import TickerSeries
from services.trainer.model.windows import log_returns, prepare


def test_price_scaler_is_fitted_on_the_training_part_only() -> None:
    closes = np.concatenate([np.linspace(10, 20, 80), np.linspace(500, 900, 20)])[:, None]
    prepared = prepare([closes], window=5, target="price")
    assert prepared is not None
    scaler = prepared.scalers[0]
    assert isinstance(scaler, PriceScaler)
    assert (scaler.low, scaler.high) == (10.0, 20.0)
    # The hold-out is scaled with the training fit, so it leaves [0, 1]: the MinMax saturation the
    # README warns about, and proof that nothing of the hold-out leaked into the fit.
    assert prepared.holdout.y.max() > 1.0


def test_return_scaler_ignores_the_hold_out_volatility() -> None:
    rng = np.random.default_rng(0)
    calm = 0.001 * rng.standard_normal(799)
    wild = 0.05 * rng.standard_normal(200)
    closes = 100 * np.exp(np.cumsum(np.concatenate([[0.0], calm, wild])))[:, None]
    prepared = prepare([closes], window=10, target="return")
    assert prepared is not None
    scaler = prepared.scalers[0]
    assert isinstance(scaler, ReturnScaler)
    expected = float(np.std(log_returns(closes[:800])))
    assert abs(scaler.scale - expected) < 1e-12


def test_hold_out_targets_come_after_every_training_target() -> None:
    closes = np.arange(1.0, 201.0)[:, None]
    prepared = prepare([closes], window=10, target="price")
    assert prepared is not None
    assert prepared.train.actual.max() < prepared.holdout.actual.min()
    assert prepared.holdout.actual.min() == 161.0  # the first close of the last 20%


def test_outer_merged_portfolio_with_nan_holes_yields_no_nan_windows() -> None:
    # The original design's input: an outer join of tickers, NaN wherever one had no bar that minute.
    rng = np.random.default_rng(3)
    minutes = np.arange(600)
    frame = pd.DataFrame(
        {t: 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(600))) for t in ("A", "B")}, index=minutes
    )
    frame.loc[rng.choice(600, 60, replace=False), "A"] = np.nan  # scattered single holes
    frame.loc[300:340, "B"] = np.nan  # a halt: longer than the fill limit
    for ticker in frame:
        s = TickerSeries(capacity=1_000)
        for minute, close in frame[ticker].items():
            s.add(int(minute), float(close))  # NaN closes are refused here
        segments = [seg.closes[:, None] for seg in s.segments(ffill_max=5)]
        for seg in segments:
            assert not np.isnan(seg).any()
        prepared = prepare(segments, window=10, target="return")
        assert prepared is not None
        for part in (prepared.train, prepared.holdout):
            assert np.isfinite(part.x).all() and np.isfinite(part.y).all()
    # The halt cut B's series in two: no window spans it.
    b = TickerSeries(capacity=1_000)
    for minute, close in frame["B"].dropna().items():
        b.add(int(minute), float(close))
    assert len(b.segments(ffill_max=5)) == 2


def test_row_wise_scaling_and_prices_match_the_per_ticker_functions_exactly() -> None:
    from services.trainer.model.windows import scale, scale_rows, to_price, to_price_rows

    rng = np.random.default_rng(3)
    closes = 50 * np.exp(np.cumsum(0.002 * rng.standard_normal((7, 6)), axis=1))
    mixed: list[Scaler] = [ReturnScaler(0.002), PriceScaler(40.0, 60.0)]
    cases: list[list[Scaler]] = [
        [ReturnScaler(0.001 * (i + 1)) for i in range(7)],
        [PriceScaler(40.0 + i, 60.0 + i) for i in range(7)],
        [*mixed * 3, ReturnScaler(0.003)],
    ]
    for scalers in cases:
        if len({type(s) for s in scalers}) == 1:  # one target per model: never mixed in one call
            rows = scale_rows(closes, scalers)
            one_by_one = [scale(c[:, None], [s])[:, 0] for c, s in zip(closes, scalers, strict=True)]
            assert rows.dtype == np.float32 and np.array_equal(rows, np.stack(one_by_one))
        else:
            rows = closes.astype(np.float32) / 50 - 1
        for values in (rows[:, -1], rows[:, -1].astype(np.float64) * 1.5):
            prices = to_price_rows(values, closes[:, -1], scalers)
            expected = [to_price(values[i : i + 1, None], closes[i : i + 1, -1:], [s])[0, 0]
                        for i, s in enumerate(scalers)]  # fmt: skip
            assert np.array_equal(prices, np.array(expected))
