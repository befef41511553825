"""Model inputs know only the past, and their statistics come from the training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.research.feature_model import FeatureModel
from bench.research.features import FeatureSpec, Panel, align_bars, frames_from_long, session_clock, windows
from services.trainer.intervals.calibration import output_offsets

TICKERS = ("AAA", "BBB", "IDX")


def _session_index(days: list[str]) -> pd.DatetimeIndex:
    # 09:30 New York in UTC: 14:30Z in winter, 13:30Z after the clock change.
    opens = [pd.Timestamp(f"{d} 09:30", tz="America/New_York").tz_convert("UTC") for d in days]
    return pd.DatetimeIndex(np.concatenate([pd.date_range(o, periods=390, freq="min") for o in opens]))


def synthetic_frames(
    sessions: int = 4, seed: int = 0, drift_from: int | None = None, volume_x: float = 1.0
) -> dict[str, pd.DataFrame]:
    """OHLCV with a U-shaped volume; from session ``drift_from`` on, returns drift up and volume is scaled."""
    rng = np.random.default_rng(seed)
    days = [d.strftime("%Y-%m-%d") for d in pd.bdate_range("2024-03-05", periods=sessions)]
    index = _session_index(days)
    minute = np.tile(np.arange(390), sessions)
    later = np.repeat(np.arange(sessions), 390) >= (drift_from if drift_from is not None else sessions)
    frames = {}
    for j, ticker in enumerate(TICKERS):
        r = 0.001 * (j + 1) * rng.standard_normal(len(index)) + np.where(later, 0.002, 0.0)
        close = 50 * (j + 1) * np.exp(np.cumsum(r))
        open_ = close * np.exp(-r / 2)
        spread = close * 0.0005 * (1 + rng.random(len(index)))
        volume = 1e5 * (1 + ((minute - 195) / 195) ** 2) * rng.lognormal(0, 0.3, len(index))
        frames[ticker] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) + spread,
                "low": np.minimum(open_, close) - spread,
                "close": close,
                "volume": np.where(later, volume * volume_x, volume),
            },
            index=index,
        )
    return frames


SPEC = FeatureSpec(lags=4, market_lags=2, market="IDX", horizons=(1, 5, 15))


def _fit(panel: Panel, train_sessions: int = 2, spec: FeatureSpec = SPEC) -> FeatureModel:
    return FeatureModel.fit(panel.rows(panel.session < train_sessions), spec)


def _shift_future(frames: dict[str, pd.DataFrame], t: int) -> dict[str, pd.DataFrame]:
    """Every bar after row ``t`` replaced by the bar one minute later (the last one kept)."""
    out = {}
    for ticker, frame in frames.items():
        values = frame.to_numpy().copy()
        values[t + 1 : -1] = values[t + 2 :]
        values[-1] = values[-1] * 1.01
        out[ticker] = pd.DataFrame(values, index=frame.index, columns=frame.columns)
    return out


@pytest.mark.parametrize("market", ["IDX", None])
def test_shifting_the_future_by_one_minute_changes_nothing_known_at_t(market: str | None) -> None:
    spec = FeatureSpec(lags=4, market_lags=2, market=market, horizons=(1, 5, 15))
    frames = synthetic_frames()
    original = align_bars(frames)
    model = _fit(original, spec=spec)
    for t in (2 * 390 + 100, 3 * 390):  # mid-session, and a session's opening minute
        shifted = align_bars(_shift_future(frames, t))
        before, after = model.inputs(original), model.inputs(shifted)
        np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
        assert not np.array_equal(before[t + 1], after[t + 1])  # the shift did change the future
        y0, y1 = model.targets(original), model.targets(shifted)
        for k, h in enumerate(spec.horizons):
            # A target at row s looks at the close of s+h: those with s+h <= t are known at t.
            np.testing.assert_array_equal(y0[: t + 1 - h, :, k], y1[: t + 1 - h, :, k])


def test_inputs_use_training_statistics_not_those_of_the_panel_they_transform() -> None:
    # The test part has 20x the volume and an upward drift: with honest statistics its inputs and targets
    # show both; statistics re-fitted on (or leaked from) the test part would hide them at mean 0.
    panel = align_bars(synthetic_frames(sessions=4, drift_from=2, volume_x=20.0))
    model = _fit(panel)
    test = panel.rows(panel.session >= 2)
    x, y = model.inputs(test), model.targets(test)
    names = SPEC.names
    assert x[:, :, names.index("rel_volume")].mean() > 3.0
    assert np.nanmean(y[:, :, 0]) > 0.5
    # The same test rows read the same whether transformed alone or inside the whole panel.
    np.testing.assert_array_equal(x[1:], model.inputs(panel)[2 * 390 + 1 :])


def test_statistics_do_not_change_when_the_test_part_does() -> None:
    calm = align_bars(synthetic_frames(sessions=4))
    wild = align_bars(synthetic_frames(sessions=4, drift_from=2, volume_x=50.0))
    a, b = _fit(calm).state(), _fit(wild).state()
    assert a == b
    np.testing.assert_array_equal(_fit(calm).inputs(calm)[: 2 * 390], _fit(wild).inputs(wild)[: 2 * 390])


def test_training_rows_are_standardized_and_targets_de_meaned_per_ticker() -> None:
    panel = align_bars(synthetic_frames(sessions=3, drift_from=0))  # every session drifts up
    model = _fit(panel, train_sessions=3)
    x, y = model.inputs(panel), model.targets(panel)
    scaled = [i for i, n in enumerate(SPEC.names) if not n.startswith("session_")]
    np.testing.assert_allclose(x[:, :, scaled].mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.nanmean(y, axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.nanstd(y, axis=0), 1.0, atol=1e-5)
    raw = model.to_return(y[:, :, :1], keep_training_drift=True)[..., 0]
    assert np.nanmean(raw) > 0.001  # the drift is there before de-meaning, and can be restored
    assert abs(np.nanmean(model.to_return(y[:, :, :1]))) < 1e-6  # by default a forecast carries no drift
    rebuilt = model.to_close(y[:-1, :, :1], panel.close[:-1], keep_training_drift=True)[..., 0]
    known = np.isfinite(rebuilt)
    assert known.mean() > 0.99
    np.testing.assert_allclose(rebuilt[known], panel.close[1:][known], rtol=1e-5)


def test_market_input_is_the_index_etf_or_the_cross_sectional_mean() -> None:
    panel = align_bars(synthetic_frames(sessions=2))
    returns = np.log(panel.close[1:] / panel.close[:-1])
    for market, expected in (("IDX", returns[:, 2]), (None, returns.mean(axis=1))):
        spec = FeatureSpec(lags=1, market_lags=1, market=market)
        model = FeatureModel.fit(panel, spec)
        col = spec.names.index("mkt_0")
        got = model.features.inverse(model.inputs(panel).astype(np.float64))[1:, 0, col]
        same_session = panel.session[1:] == panel.session[:-1]
        np.testing.assert_allclose(got[same_session], expected[same_session], rtol=1e-4, atol=1e-9)


def test_session_minute_follows_new_york_across_the_clock_change() -> None:
    index = pd.DatetimeIndex(
        ["2024-03-08T14:30Z", "2024-03-08T20:59Z", "2024-03-11T13:30Z", "2024-03-11T13:31Z"]
    )
    session, minute = session_clock(index)
    assert session.tolist() == [0, 0, 1, 1]
    assert minute.tolist() == [0, 389, 0, 1]


def test_a_missing_minute_is_filled_from_the_last_close_with_zero_volume() -> None:
    frames = synthetic_frames(sessions=1)
    gap = frames["BBB"].index[10]
    frames["BBB"] = frames["BBB"].drop(gap)
    panel = align_bars(frames)
    j = panel.tickers.index("BBB")
    assert panel.close[10, j] == panel.close[9, j] == panel.high[10, j]
    assert panel.volume[10, j] == 0.0
    model = FeatureModel.fit(panel, SPEC)
    assert np.isfinite(model.targets(panel)[10, j, 0])


def test_state_round_trip_and_long_format() -> None:
    frames = synthetic_frames(sessions=3)
    long = pd.concat(
        [f.assign(ticker=t, ts=f.index.strftime("%Y-%m-%dT%H:%M:%SZ")) for t, f in frames.items()]
    ).reset_index(drop=True)
    panel = align_bars(frames_from_long(long))
    assert panel.tickers == TICKERS
    model = _fit(panel)
    again = FeatureModel.from_state(model.state())
    np.testing.assert_array_equal(again.inputs(panel), model.inputs(panel))
    with pytest.raises(ValueError, match="tickers"):
        model.inputs(align_bars({k: frames[k] for k in TICKERS[:2]}))


def test_windows_end_at_the_given_rows() -> None:
    values = np.arange(20.0).reshape(10, 2)
    out = windows(values, [2, 9], 3)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[1, :, 0], [14.0, 16.0, 18.0])
    with pytest.raises(ValueError, match="needs ends >= 2"):
        windows(values, [1], 3)


def test_output_offsets_remove_a_constant_bias_per_ticker() -> None:
    rng = np.random.default_rng(3)
    ticker = rng.integers(0, 2, 1000)
    signal = rng.standard_normal(1000)
    outputs = signal + np.where(ticker == 0, 0.5, -0.2)
    offsets = output_offsets(outputs, ticker, 3)
    np.testing.assert_allclose(offsets[:2], [0.5, -0.2], atol=0.1)
    assert offsets[2] == 0.0
    centred = outputs - offsets[ticker]
    for j in (0, 1):
        assert abs(centred[ticker == j].mean()) < 1e-12
