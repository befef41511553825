"""Intervals cover what they claim on data whose volatility moves, and the scorer catches ones that do not."""

from __future__ import annotations

import numpy as np
import pytest

from services.scoring.coverage import coverage, coverage_of
from services.trainer.intervals.volatility import IntervalModel, VolatilityModel

SESSIONS, TICKERS = 30, 4


def heteroskedastic_returns(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``[minutes, tickers]`` with a U-shaped intraday volatility, slowly wandering volatility
    regimes and fat tails (Student t, 5 degrees of freedom); NaN at each session's first minute."""
    rng = np.random.default_rng(seed)
    minute = np.tile(np.arange(390), SESSIONS)
    n = len(minute)
    intraday = 1 + 1.5 * ((minute - 195) / 195) ** 4
    regime = np.exp(np.cumsum(0.02 * rng.standard_normal((n, TICKERS)), axis=0))
    scale = 0.0005 * (1 + np.arange(TICKERS))
    shocks = rng.standard_t(5, (n, TICKERS)) / np.sqrt(5 / 3)
    returns = scale * regime * intraday[:, None] * shocks
    returns[minute == 0] = np.nan
    return returns, minute


def _split(returns: np.ndarray, minute: np.ndarray) -> dict[str, slice]:
    a, b = 15 * 390, 20 * 390
    return {"train": slice(0, a), "valid": slice(a, b), "test": slice(b, len(minute))}


def _intervals(per_ticker: bool = False, halflife: float = 30.0) -> tuple[np.ndarray, ...]:
    """Zero point forecasts; σ̂ known at t for the return of t+1; quantiles from the validation part."""
    returns, minute = heteroskedastic_returns()
    part = _split(returns, minute)
    vol = VolatilityModel.fit(returns[part["train"]], minute[part["train"]], halflife=halflife)
    sigma = vol.sigma(returns, minute)  # row t: for the return ending at t+1
    actual = np.full_like(returns, np.nan)
    actual[:-1] = returns[1:]
    actual[:-1][minute[1:] == 0] = np.nan  # the overnight step is not forecast
    forecast = np.zeros_like(actual)
    model = IntervalModel.fit(
        (actual - forecast)[part["valid"]], sigma[part["valid"]], (0.1, 0.9), per_ticker=per_ticker
    )
    bounds = model.bounds(forecast, sigma)
    t = part["test"]
    return actual[t], bounds[t, :, 0], bounds[t, :, 1], sigma[t], model.quantiles


@pytest.mark.parametrize("per_ticker", [False, True])
def test_volatility_scaled_intervals_cover_80_percent_on_later_data(per_ticker: bool) -> None:
    actual, low, high, _, _ = _intervals(per_ticker)
    table = coverage(actual, low, high, [f"T{j}" for j in range(TICKERS)])
    assert table["*"].within(0.78, 0.82), table["*"].share
    for j in range(TICKERS):
        share = table[f"T{j}"].share
        assert share is not None and 0.76 <= share <= 0.84, (j, share)
    # Roughly as many misses on either side: the interval is not shifted.
    assert abs(table["*"].below - table["*"].above) < 0.2 * (table["*"].below + table["*"].above)


def test_a_too_narrow_or_too_wide_interval_fails_the_calibration_check() -> None:
    actual, low, high, _, _ = _intervals()
    mid, half = (low + high) / 2, (high - low) / 2
    narrow = coverage_of(actual, mid - 0.6 * half, mid + 0.6 * half)
    wide = coverage_of(actual, mid - 1.6 * half, mid + 1.6 * half)
    assert narrow.share is not None and narrow.share < 0.7 and not narrow.within()
    assert wide.share is not None and wide.share > 0.9 and not wide.within()


def test_a_constant_width_interval_is_miscalibrated_where_volatility_is_high() -> None:
    # The same pooled quantiles without σ̂ cover well on average only: in the busiest fifth of the minutes
    # they miss far more often, while the volatility-scaled interval holds there too.
    actual, low, high, sigma, _ = _intervals()
    j = 0
    busy = sigma[:, j] >= np.quantile(sigma[:, j], 0.8)
    width = np.nanquantile(np.abs(actual[:, j]), 0.8)
    flat = coverage_of(actual[busy, j], -width, width)
    scaled = coverage_of(actual[busy, j], low[busy, j], high[busy, j])
    assert flat.share is not None and flat.share < 0.7
    assert scaled.share is not None and 0.74 <= scaled.share <= 0.86


def test_sigma_at_t_does_not_depend_on_later_returns() -> None:
    returns, minute = heteroskedastic_returns()
    vol = VolatilityModel.fit(returns[:3000], minute[:3000])
    t = 5000
    changed = returns.copy()
    changed[t + 1 :] *= 10
    a, b = vol.sigma(returns, minute), vol.sigma(changed, minute)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert not np.allclose(a[t + 1 :], b[t + 1 :])
    five = vol.sigma(returns, minute, horizon=5)
    assert np.all(five[:-5] > a[:-5])  # five minutes spread wider than one


def test_coverage_counts_below_above_and_skips_missing_values() -> None:
    actual = np.array([[0.0, 5.0], [2.0, np.nan], [-3.0, 1.0]])
    low, high = np.full((3, 2), -1.0), np.full((3, 2), 1.0)
    table = coverage(actual, low, high, ["A", "B"])
    assert (table["A"].n, table["A"].inside, table["A"].below, table["A"].above) == (3, 1, 1, 1)
    assert (table["B"].n, table["B"].inside, table["B"].above) == (2, 1, 1)
    assert table["*"].n == 5 and table["*"].share == pytest.approx(2 / 5)
    lo, hi = table["*"].interval95
    assert lo < 0.4 < hi
    assert coverage_of(np.array([]), np.array([]), np.array([])).share is None


def test_close_bounds_bracket_the_last_close_times_the_forecast() -> None:
    model = IntervalModel((0.1, 0.9), np.array([[-1.2, 1.3]]))
    out = model.close_bounds(np.array([100.0, 10.0]), np.array([0.001, 0.0]), np.array([0.002, 0.001]))
    np.testing.assert_allclose(out[0], 100 * np.exp([0.001 - 0.0024, 0.001 + 0.0026]))
    np.testing.assert_allclose(out[1], 10 * np.exp([-0.0012, 0.0013]))
    with pytest.raises(ValueError, match="no residuals"):
        IntervalModel.fit(np.full((3, 1), np.nan), np.ones((3, 1)))


def test_intervals_widen_for_the_busy_open_and_close() -> None:
    # The intraday pattern is divided out and put back: the first and last 20 minutes, about twice as
    # volatile as midday here, are covered about as well as the rest.
    actual, low, high, _, _ = _intervals()
    minute = np.tile(np.arange(390), len(actual) // 390)
    edges = (minute < 20) | (minute >= 370)
    share = coverage_of(actual[edges], low[edges], high[edges]).share
    assert share is not None and 0.74 <= share <= 0.86, share
