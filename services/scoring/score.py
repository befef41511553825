"""The one scorer: forecasts against the naive forecast (next close = last close). No I/O.

Everything that prints a score (the trainer's walk-forward metrics, ``portfolio evaluate``, ``portfolio
report``, ``portfolio backtest`` and the live view) goes through :class:`Score`, so a number with one name
is one number everywhere.

* Errors are relative to the last close, ``(forecast - actual) / last`` (return space): a pooled score is
  not dominated by the highest-priced ticker. MAE is the mean absolute relative error.
* Only forecasts whose minute has a *final* bar are scored; naive stand-ins (``model_version`` starting with
  ``naive``) are never scored as the model's, only counted (``standins``, hence ``coverage``).
* The MSE ratio comes with two tests on running sums, each with a Newey-West (Bartlett) variance so the
  autocorrelation of minute errors does not fake significance. "Beats naive" is claimed only when the
  ratio is below 1 and the Clark-West test (2007) rejects at 5%: naive (a zero forecast return) is nested
  in every model here, where the Diebold-Mariano test of equal accuracy is undersized (it would rarely
  grant a real gain). "Worse than naive" is claimed when the ratio is above 1 and the two-sided
  Diebold-Mariano test on the squared-error differential rejects at 5% (nesting does not shield a model
  from being worse).
* Directional accuracy counts only minutes whose close moved (naive has no direction), with a 95% Wilson
  interval.

Sums are kept running (with the last few differentials, for the lagged products), so the trainer can
score one forecast at a time and a checkpoint can carry the scores; merging scores pools tickers (lagged
products are never formed across tickers).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from services.scoring.panel import ScorePanels
from services.scoring.significance import MAX_LAG, clark_west_test, dm_test, wilson_interval
from shared.settings import PORTFOLIO_SERIES

POOLED = "*"
LEVEL = 0.05  # every claim made about a score is a test at 5%


def pooled_series(ticker: str) -> bool:
    """Whether a series' forecasts go into the pool (:data:`POOLED`): every ticker's, never the portfolio's
    value (``PORTFOLIO_SERIES``), which is scored as its own series only (docs/forecasting.md)."""
    return ticker != PORTFOLIO_SERIES


NAIVE_PREFIX = "naive"


def _scorable(last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    return np.isfinite(last) & np.isfinite(forecast) & np.isfinite(actual) & (last > 0)


def _fold_lagged(lagged: list[float], tail: list[float], new: np.ndarray) -> list[float]:
    """Add the lagged products of ``new`` (continuing ``tail``, the series' last terms) to ``lagged``; the
    new tail."""
    full = np.concatenate([np.asarray(tail, dtype=np.float64), new])
    start = len(tail)
    for k in range(1, MAX_LAG + 1):
        i0 = max(start, k)
        if i0 < len(full):
            lagged[k - 1] += float(np.dot(full[i0:], full[i0 - k : len(full) - k]))
    return list(full[-MAX_LAG:].tolist())


def _fold_one(lagged: list[float], tail: list[float], value: float) -> list[float]:
    for k, previous in enumerate(reversed(tail), start=1):
        lagged[k - 1] += value * previous
    return [*tail[-(MAX_LAG - 1) :], value]


def clark_west_terms(e_model: np.ndarray, e_naive: np.ndarray) -> np.ndarray:
    """Clark-West's ``f = e_naive² - (e_model² - (ŷ - last)²)`` from relative errors: naive's squared error
    less the model's, with the model's estimation noise added back. ``(ŷ - last) / last`` is
    ``e_model - e_naive``, so ``f = 2 e_naive (e_naive - e_model)``."""
    return 2.0 * e_naive * (e_naive - e_model)


def _relative(last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, ...]:
    last, forecast, actual = (np.asarray(a, dtype=np.float64).ravel() for a in (last, forecast, actual))
    ok = _scorable(last, forecast, actual)
    last, forecast, actual = last[ok], forecast[ok], actual[ok]
    return (
        (forecast - actual) / last,
        (last - actual) / last,
        np.sign(forecast - last),
        np.sign(actual - last),
    )


@dataclass
class Score:
    """Running sums of one forecaster's errors and the naive forecast's, on the same minutes."""

    n: int = 0
    sse_model: float = 0.0
    sse_naive: float = 0.0
    sae_model: float = 0.0
    sae_naive: float = 0.0
    moves: int = 0
    hits: int = 0
    # Naive stand-ins whose minute was scorable: forecasts the model did not make.
    standins: int = 0
    # Diebold-Mariano: sum of d², sums of d_t·d_{t-k} for k = 1..MAX_LAG, and the last differentials.
    sum_d2: float = 0.0
    lagged: list[float] = field(default_factory=lambda: [0.0] * MAX_LAG)
    tail: list[float] = field(default_factory=list)
    # Clark-West: the same sums of its terms ``f``. Counted apart from ``n``: a score restored from a
    # checkpoint written before these sums existed has terms for the later forecasts only.
    cw_n: int = 0
    cw_sum: float = 0.0
    cw_sum_sq: float = 0.0
    cw_lagged: list[float] = field(default_factory=lambda: [0.0] * MAX_LAG)
    cw_tail: list[float] = field(default_factory=list)
    # A pool's test series (panel.py): set by :func:`pool`, never saved with the sums.
    panel: ScorePanels | None = field(default=None, repr=False, compare=False)

    def add(self, last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> None:
        """Score forecasts in time order (one ticker's, for the lagged products to mean anything)."""
        if np.size(last) == 1:
            self.add_one(float(np.ravel(last)[0]), float(np.ravel(forecast)[0]), float(np.ravel(actual)[0]))
            return
        e_model, e_naive, dir_model, dir_actual = _relative(last, forecast, actual)
        if not len(e_model):
            return
        self.n += len(e_model)
        self.sse_model += float(np.sum(e_model**2))
        self.sse_naive += float(np.sum(e_naive**2))
        self.sae_model += float(np.sum(np.abs(e_model)))
        self.sae_naive += float(np.sum(np.abs(e_naive)))
        moved = dir_actual != 0
        self.moves += int(np.sum(moved))
        self.hits += int(np.sum(dir_model[moved] == dir_actual[moved]))
        d = e_model**2 - e_naive**2
        self.sum_d2 += float(np.sum(d * d))
        self.tail = _fold_lagged(self.lagged, self.tail, d)
        f = clark_west_terms(e_model, e_naive)
        self.cw_n += len(f)
        self.cw_sum += float(np.sum(f))
        self.cw_sum_sq += float(np.sum(f * f))
        self.cw_tail = _fold_lagged(self.cw_lagged, self.cw_tail, f)

    def add_one(self, last: float, forecast: float, actual: float) -> tuple[float, float]:
        """Score one forecast; its squared-error differential and Clark-West term (nan: not scorable), for
        the pooled panels."""
        # The walk-forward scores one forecast per bar: plain floats, a hundred times cheaper than arrays.
        if not (math.isfinite(last) and math.isfinite(forecast) and math.isfinite(actual) and last > 0):
            return math.nan, math.nan
        e_model, e_naive = (forecast - actual) / last, (last - actual) / last
        self.n += 1
        self.sse_model += e_model * e_model
        self.sse_naive += e_naive * e_naive
        self.sae_model += abs(e_model)
        self.sae_naive += abs(e_naive)
        if actual != last:
            self.moves += 1
            self.hits += (forecast > last) == (actual > last) and forecast != last
        d = e_model * e_model - e_naive * e_naive
        self.sum_d2 += d * d
        self.tail = _fold_one(self.lagged, self.tail, d)
        f = 2.0 * e_naive * (e_naive - e_model)  # clark_west_terms of one forecast, without an array
        self.cw_n += 1
        self.cw_sum += f
        self.cw_sum_sq += f * f
        self.cw_tail = _fold_one(self.cw_lagged, self.cw_tail, f)
        return d, f

    def merge(self, other: Score) -> Score:
        """The pool of two scores (of different tickers: no lagged product spans them)."""
        out = Score(**{k: getattr(self, k) + getattr(other, k) for k in _SUMS})
        out.lagged = [a + b for a, b in zip(self.lagged, other.lagged, strict=True)]
        out.cw_lagged = [a + b for a, b in zip(self.cw_lagged, other.cw_lagged, strict=True)]
        return out

    @property
    def mse_ratio(self) -> float | None:
        """Model MSE / naive MSE: below 1 beats naive. None until there is something to compare."""
        if self.n == 0 or self.sse_naive == 0:
            return None
        return self.sse_model / self.sse_naive

    @property
    def coverage(self) -> float | None:
        total = self.n + self.standins
        return self.n / total if total else None

    @property
    def directional_accuracy(self) -> float | None:
        return self.hits / self.moves if self.moves else None

    def diebold_mariano(self) -> tuple[float | None, float | None]:
        """(statistic, two-sided p-value) of "model and naive are equally accurate" (panel.py); a pool tests
        its per-minute totals. None with fewer than 10 terms or a zero variance."""
        if self.panel is not None:
            return self.panel.dm_test()
        return dm_test(self.n, self.sse_model - self.sse_naive, self.sum_d2, self.lagged)

    def clark_west(self) -> tuple[float | None, float | None]:
        """(statistic, one-sided p-value) of "the model's forecasts add nothing to naive's" (Clark-West);
        a pool tests its per-minute totals. None with fewer than 10 terms or a zero variance."""
        if self.panel is not None:
            return self.panel.clark_west()
        return clark_west_test(self.cw_n, self.cw_sum, self.cw_sum_sq, self.cw_lagged)

    def beats_naive(self) -> bool:
        """The only claim of skill made anywhere: lower MSE than naive and Clark-West rejects at 5%."""
        ratio = self.mse_ratio
        _, p = self.clark_west()
        return ratio is not None and ratio < 1.0 and p is not None and p < LEVEL

    def verdict(self) -> str:
        ratio = self.mse_ratio
        _, dm_p = self.diebold_mariano()
        _, cw_p = self.clark_west()
        if ratio is None or (dm_p is None and cw_p is None):
            return "not yet"
        if self.beats_naive():
            return "beats naive"
        if ratio > 1 and dm_p is not None and dm_p < LEVEL:
            return "worse than naive"
        return "no different from naive"

    def summary(self) -> dict[str, float | int | str | bool | None]:
        """Plain numbers (no NaN: FerretDB rejects it; None where not defined yet)."""
        low, high = wilson_interval(self.hits, self.moves)
        stat, p = self.diebold_mariano()
        cw_stat, cw_p = self.clark_west()
        n = self.n
        return {
            "n": n,
            "standins": self.standins,
            "coverage": self.coverage,
            "mse_ratio": self.mse_ratio,
            "mse_model": self.sse_model / n if n else None,
            "mse_naive": self.sse_naive / n if n else None,
            "mae_model": self.sae_model / n if n else None,
            "mae_naive": self.sae_naive / n if n else None,
            "dm_stat": stat,
            "dm_p": p,
            "cw_stat": cw_stat,
            "cw_p": cw_p,
            "directional_accuracy": self.directional_accuracy,
            "directional_n": self.moves,
            "directional_ci_low": low if self.moves else None,
            "directional_ci_high": high if self.moves else None,
            "beats_naive": self.beats_naive(),
            "verdict": self.verdict(),
        }

    def state(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("panel")
        return out

    def copy(self) -> Score:
        """The sums alone (no panel), cheap enough to take under the forecaster's lock."""
        out = copy.copy(self)
        out.lagged, out.tail, out.panel = list(self.lagged), list(self.tail), None
        out.cw_lagged, out.cw_tail = list(self.cw_lagged), list(self.cw_tail)
        return out

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Score:
        """Also reads checkpoints written before the DM sums existed (they start at zero)."""
        known = {k: v for k, v in state.items() if k in _FIELDS}
        score = cls(**known)  # type: ignore[arg-type]
        score.lagged = list(score.lagged) + [0.0] * (MAX_LAG - len(score.lagged))
        score.cw_lagged = list(score.cw_lagged) + [0.0] * (MAX_LAG - len(score.cw_lagged))
        return score


_FIELDS = set(Score.__dataclass_fields__) - {"panel"}
_SUMS = (
    "n", "sse_model", "sse_naive", "sae_model", "sae_naive", "moves", "hits", "standins", "sum_d2",
    "cw_n", "cw_sum", "cw_sum_sq",
)  # fmt: skip


def pool(scores: Iterable[Score], panels: ScorePanels) -> Score:
    """The tickers' sums added up; its tests on ``panels``, their terms summed per minute."""
    total = Score()
    for score in scores:
        total = total.merge(score)
    total.panel = panels.settled()
    return total


def add_to_panels(
    panels: ScorePanels, minutes: np.ndarray, last: np.ndarray, forecast: np.ndarray, actual: np.ndarray
) -> None:
    """Each scorable forecast's squared-error differential and Clark-West term, under its target minute."""
    last, forecast, actual = (np.asarray(a, dtype=np.float64).ravel() for a in (last, forecast, actual))
    ok = _scorable(last, forecast, actual)
    e_model, e_naive = (forecast[ok] - actual[ok]) / last[ok], (last[ok] - actual[ok]) / last[ok]
    d = e_model**2 - e_naive**2
    f = clark_west_terms(e_model, e_naive)
    for minute, d_t, f_t in zip(np.asarray(minutes).ravel()[ok], d, f, strict=True):
        panels.add(int(minute), float(d_t), float(f_t))
