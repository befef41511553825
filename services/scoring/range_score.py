"""Every figure of one horizon's 80% ranges in one place, per ticker and pooled, against any baselines.
Built only from :mod:`intervals`, :mod:`coverage` and :mod:`significance`, so a table, the report and a
backtest that call it print the same numbers. No I/O.

Inputs are ``[rows, tickers]`` arrays in time order (NaN where a ticker has no forecast) and the target
epoch minute of each row. Kupiec's and Christoffersen's likelihoods assume independent hits; h-minute
ranges overlap the next h - 1, so both are also given on ranges h minutes apart (``*_spaced``), the ones
to read for h > 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.scoring.coverage import Coverage, coverage_of
from services.scoring.intervals import (
    ALPHA,
    LossRatio,
    coverage_by_bucket,
    interval_score,
    loss_ratio,
    pinball_loss,
)
from services.scoring.score import POOLED
from services.scoring.significance import christoffersen_test, kupiec_test, transition_counts
from shared.session import SessionClock

Test = tuple[float | None, float | None]


@dataclass(frozen=True)
class RangeScore:
    horizon: int
    coverage: dict[str, Coverage]
    kupiec: dict[str, Test]
    kupiec_spaced: dict[str, Test]
    christoffersen: dict[str, Test]
    christoffersen_spaced: dict[str, Test]
    buckets: dict[int, Coverage]
    # Mean relative losses of the model, and per baseline name the ratios with their DM tests.
    interval_score: float | None
    pinball_q10: float | None
    pinball_q90: float | None
    versus: dict[str, dict[str, LossRatio]] = field(default_factory=dict)


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if len(values) else None


def _losses(last: np.ndarray, low: np.ndarray, high: np.ndarray, actual: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "interval_score": interval_score(last, low, high, actual, ALPHA),
        "pinball_q10": pinball_loss(last, low, actual, ALPHA / 2),
        "pinball_q90": pinball_loss(last, high, actual, 1 - ALPHA / 2),
    }


def _summed(counts: Iterable[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    n00, n01, n10, n11 = (
        int(v) for v in np.sum(np.array(list(counts), dtype=np.int64).reshape(-1, 4), axis=0)
    )
    return n00, n01, n10, n11


def score_ranges(
    horizon: int,
    minutes: np.ndarray,
    last: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    actual: np.ndarray,
    tickers: Sequence[str],
    session: SessionClock,
    baselines: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    coverage: float = 1 - ALPHA,
) -> RangeScore:
    """``minutes`` ``[rows]``: each row's target minute, bucketed by the ``session`` clock; ``baselines``:
    name -> (low, high) of the same rows. A baseline's ratios use only the forecasts both made."""
    last, low, high, actual = (np.asarray(a, dtype=np.float64) for a in (last, low, high, actual))
    grid = np.broadcast_to(np.asarray(minutes)[:, None], actual.shape)
    scorable = np.isfinite(last) & np.isfinite(low) & np.isfinite(high) & np.isfinite(actual) & (last > 0)
    table = {t: coverage_of(actual[:, j], low[:, j], high[:, j]) for j, t in enumerate(tickers)}
    table[POOLED] = coverage_of(actual, low, high)
    kupiec = {t: kupiec_test(c.inside, c.n, coverage) for t, c in table.items()}
    spaced_counts: dict[str, tuple[int, int]] = {}
    markov: dict[str, tuple[int, int, int, int]] = {}
    markov_spaced: dict[str, tuple[int, int, int, int]] = {}
    for j, t in enumerate(tickers):
        ok = scorable[:, j]
        inside = (actual[ok, j] >= low[ok, j]) & (actual[ok, j] <= high[ok, j])
        apart = inside[::horizon]
        spaced_counts[t] = (int(np.sum(apart)), len(apart))
        markov[t] = transition_counts(inside.tolist())
        markov_spaced[t] = transition_counts(inside.tolist(), lag=horizon)
    spaced_counts[POOLED] = (
        sum(x for x, _ in spaced_counts.values()),
        sum(n for _, n in spaced_counts.values()),
    )
    markov[POOLED] = _summed(markov.values())
    markov_spaced[POOLED] = _summed(markov_spaced.values())
    model = _losses(last, low, high, actual)
    versus = {}
    for name, (b_low, b_high) in (baselines or {}).items():
        base = _losses(
            last, np.asarray(b_low, dtype=np.float64), np.asarray(b_high, dtype=np.float64), actual
        )
        versus[name] = {k: loss_ratio(grid, model[k], base[k]) for k in model}
    return RangeScore(
        horizon=horizon,
        coverage=table,
        kupiec=kupiec,
        kupiec_spaced={t: kupiec_test(x, n, coverage) for t, (x, n) in spaced_counts.items()},
        christoffersen={t: christoffersen_test(c) for t, c in markov.items()},
        christoffersen_spaced={t: christoffersen_test(c) for t, c in markov_spaced.items()},
        buckets=coverage_by_bucket(grid[scorable], actual[scorable], low[scorable], high[scorable], session),
        interval_score=_mean(model["interval_score"]),
        pinball_q10=_mean(model["pinball_q10"]),
        pinball_q90=_mean(model["pinball_q90"]),
        versus=versus,
    )
