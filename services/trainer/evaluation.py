"""The one scorer: forecasts against the naive forecast (next close = last close). No I/O.

Everything that prints a score (the trainer's walk-forward metrics, ``portfolio evaluate``, ``portfolio
report``, ``portfolio backtest`` and the live view) goes through :class:`Score`, so a number with one name
is one number everywhere.

* Errors are relative to the last close, ``(forecast - actual) / last`` (return space): a pooled score is
  not dominated by the highest-priced ticker. MAE is the mean absolute relative error.
* Only forecasts whose minute has a *final* bar are scored; naive stand-ins (``model_version`` starting with
  ``naive``) are never scored as the model's, only counted (``standins``, hence ``coverage``).
* The MSE ratio comes with a Diebold-Mariano test of equal accuracy on the squared-error differential,
  with a Newey-West (Bartlett) variance so the autocorrelation of minute errors does not fake
  significance. "Beats naive" is claimed only when the ratio is below 1 and the test rejects at 5%.
* Directional accuracy counts only minutes whose close moved (naive has no direction), with a 95% Wilson
  interval.

Sums are kept running (with the last few differentials, for the lagged products), so the trainer can
score one forecast at a time and a checkpoint can carry the scores; merging scores pools tickers (lagged
products are never formed across tickers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from services.trainer.confidence import Z95, wilson_interval
from services.trainer.intervals import Coverage, coverage_of

# Newey-West lags: floor(4 (n/100)^(2/9)), capped so running sums stay a fixed size.
MAX_LAG = 10
POOLED = "*"
NAIVE_PREFIX = "naive"


def newey_west_lags(n: int) -> int:
    return 0 if n < 2 else min(MAX_LAG, int(4 * (n / 100) ** (2 / 9)), n - 1)


def _relative(last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, ...]:
    last, forecast, actual = (np.asarray(a, dtype=np.float64).ravel() for a in (last, forecast, actual))
    ok = np.isfinite(last) & np.isfinite(forecast) & np.isfinite(actual) & (last > 0)
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

    def add(self, last: np.ndarray, forecast: np.ndarray, actual: np.ndarray) -> None:
        """Score forecasts in time order (one ticker's, for the lagged products to mean anything)."""
        if np.size(last) == 1:
            self._add_one(float(np.ravel(last)[0]), float(np.ravel(forecast)[0]), float(np.ravel(actual)[0]))
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
        full = np.concatenate([np.asarray(self.tail, dtype=np.float64), d])
        start = len(self.tail)
        for k in range(1, MAX_LAG + 1):
            i0 = max(start, k)
            if i0 < len(full):
                self.lagged[k - 1] += float(np.dot(full[i0:], full[i0 - k : len(full) - k]))
        self.tail = full[-MAX_LAG:].tolist()

    def _add_one(self, last: float, forecast: float, actual: float) -> None:
        # The walk-forward scores one forecast per bar: plain floats, a hundred times cheaper than arrays.
        if not (math.isfinite(last) and math.isfinite(forecast) and math.isfinite(actual) and last > 0):
            return
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
        for k, previous in enumerate(reversed(self.tail), start=1):
            self.lagged[k - 1] += d * previous
        self.tail = [*self.tail[-(MAX_LAG - 1) :], d]

    def merge(self, other: Score) -> Score:
        """The pool of two scores (of different tickers: no lagged product spans them)."""
        out = Score(**{k: getattr(self, k) + getattr(other, k) for k in _SUMS})
        out.lagged = [a + b for a, b in zip(self.lagged, other.lagged, strict=True)]
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
        """(statistic, two-sided p-value) of "model and naive are equally accurate"; negative statistic:
        the model's squared errors are smaller. None with fewer than 10 forecasts or a zero variance."""
        n = self.n
        if n < 10:
            return None, None
        mean = (self.sse_model - self.sse_naive) / n
        gamma0 = self.sum_d2 / n - mean * mean
        lags = newey_west_lags(n)
        # Lagged autocovariances from running sums: the mean correction uses all n terms (error O(k/n)).
        long_run = gamma0 + 2 * sum(
            (1 - k / (lags + 1)) * (self.lagged[k - 1] / n - mean * mean) for k in range(1, lags + 1)
        )
        if not long_run > 0:
            return None, None
        stat = mean / math.sqrt(long_run / n)
        return stat, math.erfc(abs(stat) / math.sqrt(2))

    def beats_naive(self) -> bool:
        """The only claim of skill made anywhere: lower MSE than naive and the DM test rejects at 5%."""
        ratio = self.mse_ratio
        _, p = self.diebold_mariano()
        return ratio is not None and ratio < 1.0 and p is not None and p < 0.05

    def verdict(self) -> str:
        ratio = self.mse_ratio
        _, p = self.diebold_mariano()
        if ratio is None or p is None:
            return "not yet"
        if p >= 0.05:
            return "no different from naive"
        return "beats naive" if ratio < 1 else "worse than naive"

    def summary(self) -> dict[str, float | int | str | bool | None]:
        """Plain numbers (no NaN: FerretDB rejects it; None where not defined yet)."""
        low, high = wilson_interval(self.hits, self.moves)
        stat, p = self.diebold_mariano()
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
            "directional_accuracy": self.directional_accuracy,
            "directional_n": self.moves,
            "directional_ci_low": low if self.moves else None,
            "directional_ci_high": high if self.moves else None,
            "beats_naive": self.beats_naive(),
            "verdict": self.verdict(),
        }

    def state(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Score:
        """Also reads checkpoints written before the DM sums existed (they start at zero)."""
        known = {k: v for k, v in state.items() if k in _FIELDS}
        score = cls(**known)  # type: ignore[arg-type]
        score.lagged = list(score.lagged) + [0.0] * (MAX_LAG - len(score.lagged))
        return score


_FIELDS = {f for f in Score.__dataclass_fields__}
_SUMS = ("n", "sse_model", "sse_naive", "sae_model", "sae_naive", "moves", "hits", "standins", "sum_d2")


def pool(scores: Iterable[Score]) -> Score:
    total = Score()
    for score in scores:
        total = total.merge(score)
    return total


@dataclass
class Pending:
    """A forecast awaiting its minute's final close (``standin``: a naive stand-in, counted only)."""

    last: float
    yhat: float
    lineage: str
    version: str
    baseline: float | None = None
    standin: bool = False


@dataclass
class WalkForward:
    """Walk-forward scores per (ticker, lineage), and which keys changed since the last :meth:`drain`."""

    scores: dict[tuple[str, str], Score] = field(default_factory=dict)
    # The AR baseline's scores on the same minutes.
    baseline: dict[tuple[str, str], Score] = field(default_factory=dict)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)

    def add(self, ticker: str, pending: Pending, actual: float) -> None:
        key = (ticker, pending.lineage)
        score = self.scores.setdefault(key, Score())
        self.dirty.add(key)
        if pending.standin:
            score.standins += 1
            return
        # One forecast per bar, on the polling thread: plain floats (Score.add's one-value case) without
        # wrapping them in arrays first (a tenth of the forecast path at 2,000 tickers, issue 12).
        score._add_one(float(pending.last), float(pending.yhat), float(actual))
        if pending.baseline is not None:
            self.baseline.setdefault(key, Score())._add_one(
                float(pending.last), float(pending.baseline), float(actual)
            )
        self.versions[key] = pending.version

    def pooled(self, lineage: str) -> Score:
        return pool(s for (_, lin), s in self.scores.items() if lin == lineage)

    def pooled_baseline(self, lineage: str) -> Score:
        return pool(s for (_, lin), s in self.baseline.items() if lin == lineage)


# --- stored or backtested predictions -----------------------------------------------------------------
SCORED_COLUMNS = ["ticker", "ts", "yhat", "actual", "naive", "model_version"]
# The forecast's 80% interval (10% and 90% quantiles of the close), where predictions carry one.
INTERVAL_COLUMNS = ["q10", "q90"]


def score_predictions(closes: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Join predictions (ticker, ts, yhat, based_on_ts, model_version) with closes (ticker, ts, close,
    final): one row per prediction whose minute has a *final* bar, with ``actual`` (that close) and
    ``naive`` (the close of ``based_on_ts``), ordered by ticker and time. Naive stand-ins are kept (they
    count towards coverage) and told apart by :func:`is_standin`."""
    if closes.empty or predictions.empty:
        return pd.DataFrame(columns=SCORED_COLUMNS)
    final = closes.loc[closes["final"].astype(bool), ["ticker", "ts", "close"]]
    scored = predictions.merge(final.rename(columns={"close": "actual"}), on=["ticker", "ts"], how="inner")
    scored = scored.merge(
        closes[["ticker", "ts", "close"]].rename(columns={"ts": "based_on_ts", "close": "naive"}),
        on=["ticker", "based_on_ts"],
        how="inner",
    )
    columns = SCORED_COLUMNS + [c for c in INTERVAL_COLUMNS if c in scored.columns]
    return scored[columns].sort_values(["ticker", "ts"]).reset_index(drop=True)


def is_standin(model_version: pd.Series) -> pd.Series:
    return model_version.astype(str).str.startswith(NAIVE_PREFIX)


def scores_by_ticker(scored: pd.DataFrame) -> dict[str, Score]:
    """One :class:`Score` per ticker and the pool under :data:`POOLED` (present once anything is scored)."""
    out: dict[str, Score] = {}
    for ticker, group in scored.groupby("ticker", sort=True):
        standin = is_standin(group["model_version"])
        model = group[~standin]
        score = Score(standins=int(standin.sum()))
        score.add(model["naive"].to_numpy(), model["yhat"].to_numpy(), model["actual"].to_numpy())
        out[str(ticker)] = score
    if out:
        out[POOLED] = pool(out.values())
    return out


def interval_coverage(scored: pd.DataFrame) -> dict[str, Coverage]:
    """Share of final actual closes inside the model's 80% intervals, per ticker and pooled (:data:`POOLED`):
    :func:`~services.trainer.intervals.coverage_of`, over the forecasts that carry an interval."""
    if not set(INTERVAL_COLUMNS) <= set(scored.columns):
        return {}
    model = scored[~is_standin(scored["model_version"])].dropna(subset=INTERVAL_COLUMNS)
    if model.empty:
        return {}
    parts = [np.asarray(model[c], dtype=np.float64) for c in ("actual", "q10", "q90")]
    out = {
        str(t): coverage_of(*(p[idx] for p in parts)) for t, idx in model.groupby("ticker").indices.items()
    }
    out[POOLED] = coverage_of(*parts)
    return out


def coverage_summary(cover: Coverage | None) -> dict[str, float | int | None]:
    """Plain numbers for a table row: share inside the 80% interval with its 95% Wilson interval."""
    if cover is None or not cover.n:
        return {"in80": None, "in80_n": 0, "in80_ci_low": None, "in80_ci_high": None}
    low, high = cover.interval95
    return {"in80": cover.share, "in80_n": cover.n, "in80_ci_low": low, "in80_ci_high": high}


def summary_rows(scores: dict[str, Score], **labels: object) -> list[dict[str, object]]:
    """Rows of plain values (tickers sorted, the pool last), each with ``labels`` added."""
    order = sorted(t for t in scores if t != POOLED) + ([POOLED] if POOLED in scores else [])
    return [labels | {"ticker": t} | scores[t].summary() for t in order]


def running_ratio(scored: pd.DataFrame) -> pd.DataFrame:
    """Per ticker, in time order, over the model's scored forecasts: the running MSE ratio to naive and its
    95% band (from the same Newey-West variance as the DM test). NaN while undefined."""
    model = scored[~is_standin(scored["model_version"])] if len(scored) else scored
    parts = []
    for _, group in model.groupby("ticker", sort=True):
        last = group["naive"].to_numpy(dtype=np.float64)
        e_model = (group["yhat"].to_numpy(dtype=np.float64) - group["actual"].to_numpy()) / last
        e_naive = (last - group["actual"].to_numpy(dtype=np.float64)) / last
        d = e_model**2 - e_naive**2
        n = np.arange(1, len(d) + 1)
        cum_naive = np.cumsum(e_naive**2)
        mean = np.cumsum(d) / n
        var = np.cumsum(d * d) / n - mean**2
        lags = newey_west_lags(len(d))
        for k in range(1, lags + 1):
            products = np.concatenate([np.zeros(k), np.cumsum(d[k:] * d[:-k])])
            var = var + 2 * (1 - k / (lags + 1)) * (products / n - mean**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(cum_naive > 0, 1 + np.cumsum(d) / cum_naive, np.nan)
            half = Z95 * np.sqrt(np.clip(var, 0, None) / n) * n / cum_naive
            half = np.where((cum_naive > 0) & (n >= 10), half, np.nan)
        parts.append(
            pd.DataFrame({"ratio": ratio, "low": ratio - half, "high": ratio + half}, index=group.index)
        )
    if not parts:
        return pd.DataFrame(columns=["ratio", "low", "high"], dtype=float)
    return pd.concat(parts)
