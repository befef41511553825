"""The 80% interval from each ticker's raw tail, many tickers at once: :meth:`Calibration.bounds` vectorized.
No I/O.

The live path carries each ticker's σ̂ from minute to minute (``running_sigma.py``) and uses this module for
the pieces: :func:`ew_sums` (a tail regularized, standardized and weighted, all tickers as arrays: a state's
rebuild), :func:`sigmas` and :func:`close_bounds`. :func:`bounds_rows` is the whole tail form, the
reference the running state is tested and benchmarked against. The operations and their order are those of
``Calibration.bounds``, so the quantiles agree up to the order of one float sum (the weighted sums run over
padded rows, with zeros where ``bounds`` drops a NaN; a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.trainer.intervals.calibration import TAIL, Calibration
from services.trainer.model.series import TickerSeries
from shared.session import DAY_MINUTES


def bounds_rows(
    calibration: Calibration,
    series: Sequence[TickerSeries],
    scales: np.ndarray,
    forecasts: np.ndarray,
    ffill_max: int,
) -> list[tuple[float, float] | None]:
    """``calibration.bounds`` for each ``(series[i], scales[i], forecasts[i])``: the 10% and 90% quantiles
    of the next close, or None where they are not finite and positive."""
    if not len(series):
        return []
    tails = [s.arrays() for s in series]
    sums = ew_sums(
        calibration, [m[-TAIL:] for m, _ in tails], [c[-TAIL:] for _, c in tails], scales, ffill_max
    )
    last = np.array([c[-1] for _, c in tails])
    return close_bounds(calibration, last, sigmas(calibration, sums, scales), forecasts)


@dataclass(frozen=True)
class EwSums:
    """Per ticker: the exponentially weighted sums of d² (``a``) and of the weights (``b``) over its rows,
    the newest row's weight 1 (its level is ``a / b``), and the minute of the session of its newest row."""

    a: np.ndarray
    b: np.ndarray
    session: np.ndarray


def ew_sums(
    calibration: Calibration,
    minutes: Sequence[np.ndarray],
    closes: Sequence[np.ndarray],
    scales: np.ndarray,
    ffill_max: int,
) -> EwSums:
    """The sums ``calibration.last_sigma`` weighs, for each ticker's raw points ``(minutes[i], closes[i])``
    (at least one each) regularized by the series policy, standardized by ``scales[i]`` and de-seasoned."""
    n = len(minutes)
    lengths = np.array([len(m) for m in minutes])
    first = np.cumsum(lengths) - lengths  # each ticker's first point in the flat arrays
    flat_minutes, flat_closes = np.concatenate(minutes), np.concatenate(closes)

    # Regularize (series.regularize): a gap of up to ``ffill_max`` minutes repeats the close before it,
    # a longer one cuts (no return spans it).
    gap = np.zeros(len(flat_minutes), np.int64)
    gap[1:] = flat_minutes[1:] - flat_minutes[:-1] - 1
    gap[first] = 0
    cut = gap > ffill_max
    cut[first] = True
    fill_after = np.zeros(len(flat_minutes), np.int64)
    fill_after[:-1] = np.where(cut[1:], 0, gap[1:])
    repeat = 1 + fill_after
    point = np.repeat(np.arange(len(flat_minutes)), repeat)
    within = np.arange(len(point)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    row_minutes = flat_minutes[point] + within
    row_closes = flat_closes[point]
    rows = np.add.reduceat(repeat, first)  # regularized rows per ticker
    owner = np.repeat(np.arange(n), rows)
    row_first = np.cumsum(rows) - rows
    row_last = row_first + rows - 1

    # calibration.standardized_returns: the log return ending at each row / the ticker's scale, NaN at a
    # segment's first close.
    log_close = np.log(row_closes)
    z = np.full(len(point), np.nan)
    z[1:] = (log_close[1:] - log_close[:-1]) / scales[owner[1:]]
    z[(within == 0) & cut[point]] = np.nan

    session = _session_rows(calibration, row_minutes, owner, row_first, row_last)
    vol = calibration.volatility
    d = z / vol.scale[0] / pattern_at(calibration, session)

    # calibration.last_sigma: weights by the row's place from the end among the finite rows. Rows
    # right-aligned, padded with NaN on the left.
    width = int(rows.max())
    grid = np.full((n, width), np.nan)
    grid[owner, width - rows[owner] + np.arange(len(point)) - row_first[owner]] = d
    finite = np.isfinite(grid)
    place = np.cumsum(finite[:, ::-1], axis=1)[:, ::-1] - 1
    weights = np.where(finite, (0.5 ** (np.arange(width) / vol.halflife))[np.maximum(place, 0)], 0.0)
    values = np.where(finite, grid, 0.0)
    return EwSums(np.sum(weights * values * values, axis=1), np.sum(weights, axis=1), session[row_last])


def pattern_at(calibration: Calibration, session: np.ndarray) -> np.ndarray:
    """The intraday pattern's level at each minute of the session."""
    pattern = calibration.volatility.pattern
    return pattern[np.clip(session // calibration.volatility.bucket, 0, len(pattern) - 1)]


def sigmas(calibration: Calibration, sums: EwSums, scales: np.ndarray) -> np.ndarray:
    """σ̂ of the next log return: the level (1.0 before any return is seen) times the pattern of the minute
    ahead, in each ticker's return units."""
    level = sums.a / np.where(sums.b > 0, sums.b, 1.0)
    level = np.where(sums.b > 0, level, 1.0)
    return (
        np.sqrt(level) * pattern_at(calibration, sums.session + 1) * calibration.volatility.scale[0] * scales
    )


def close_bounds(
    calibration: Calibration, last: np.ndarray, sigma: np.ndarray, forecasts: np.ndarray
) -> list[tuple[float, float] | None]:
    """The 10% and 90% quantiles of the next close around each forecast, or None where they are not
    finite and positive."""
    quantiles = calibration.interval.quantiles[0]  # ``bounds`` reads group 0 (a pooled model has one)
    q = last[:, None] * np.exp(np.log(forecasts / last)[:, None] + sigma[:, None] * quantiles[None, :])
    low, high = q[:, 0], q[:, 1]
    ok = np.isfinite(low) & np.isfinite(high) & (low > 0) & (low <= high)
    # As Python floats in one go: indexing numpy scalars one by one cost a millisecond at 2,000 tickers.
    return [
        (lo, hi) if good else None
        for lo, hi, good in zip(low.tolist(), high.tolist(), ok.tolist(), strict=True)
    ]


def _session_rows(
    calibration: Calibration,
    row_minutes: np.ndarray,
    owner: np.ndarray,
    row_first: np.ndarray,
    row_last: np.ndarray,
) -> np.ndarray:
    """Minute of the calibration's session of every row (``SessionClock.minute_of_tail`` per ticker): one
    UTC offset per ticker unless its tail spans a clock change."""
    clock = calibration.session
    ends = np.concatenate([row_minutes[row_first], row_minutes[row_last]])
    offsets = {int(m): clock.utc_offset(int(m)) for m in np.unique(ends)}
    start = np.array([offsets[int(m)] for m in row_minutes[row_first]])
    end = np.array([offsets[int(m)] for m in row_minutes[row_last]])
    session = (row_minutes + start[owner]) % DAY_MINUTES - clock.open_minute
    for i in np.flatnonzero(start != end):
        span = slice(row_first[i], row_last[i] + 1)
        session[span] = clock.minute_of(row_minutes[span])
    return session
