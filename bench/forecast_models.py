"""Data and forecasters of the forecast-variants bench (issue 13): the recording split by session, closed-form
ridge models pooled over tickers (or per ticker), and LSTMs on returns or features, trained with the
trainer's own ``fit``. Scoring lives in ``forecast_variants.py`` (the trainer's one scorer)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.original_training import fit_windows
from bench.research.feature_model import FeatureModel
from bench.research.features import FeatureSpec, align_bars, frames_from_long, session_returns
from services.trainer.intervals.calibration import output_offsets
from services.trainer.intervals.volatility import VolatilityModel
from services.trainer.model.network import ForecastLSTM, predict
from services.trainer.model.training import make_optimizer

RIDGE_ALPHAS = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7)


def feature_lstm(features: int, units: int, layers: int) -> ForecastLSTM:
    """The trainer's LSTM over feature windows, with one output (the standardized next return)."""
    net = ForecastLSTM(features, units, layers)
    net.head = nn.Linear(units, 1)
    return net


@dataclass
class Data:
    tickers: tuple[str, ...]
    close: np.ndarray  # [minutes, tickers]
    returns: np.ndarray  # session log returns, NaN at each open
    minute: np.ndarray
    session: np.ndarray
    x: np.ndarray  # scaled features [minutes, tickers, features]
    y: np.ndarray  # standardized de-meaned targets [minutes, tickers, horizons]
    model: FeatureModel
    parts: dict[str, np.ndarray]  # boolean row masks: train, valid, test
    vol: VolatilityModel  # σ̂ for the intervals, fitted on the training sessions


def load(path: Path, train: float, valid: float, horizons: tuple[int, ...], test_end: float = 1.0) -> Data:
    panel = align_bars(frames_from_long(pd.read_csv(path)))
    sessions = int(panel.session.max()) + 1
    a, b = round(sessions * train), round(sessions * (train + valid))
    parts = {"train": panel.session < a, "valid": (panel.session >= a) & (panel.session < b)}
    c = round(sessions * test_end)
    parts["test"] = (panel.session >= b) & (panel.session < c)
    spec = FeatureSpec(market="SPY" if "SPY" in panel.tickers else None, horizons=horizons)
    model = FeatureModel.fit(panel.rows(parts["train"]), spec)
    print(
        f"{len(panel.tickers)} tickers, {sessions} sessions, {np.isfinite(panel.close).sum():,} bars; "
        f"sessions train 0-{a - 1}, validate {a}-{b - 1}, test {b}-{c - 1}; features {spec.names}"
    )
    rets = session_returns(panel)
    vol = VolatilityModel.fit(rets[parts["train"]], panel.minute[parts["train"]])
    x, y = model.inputs(panel), model.targets(panel)
    return Data(panel.tickers, panel.close, rets, panel.minute, panel.session, x, y, model, parts, vol)


def pairs(d: Data, part: str, window: int, horizon: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(row, ticker) of every forecast in a part: a target exists and a full window fits."""
    ok = d.parts[part][:, None] & np.isfinite(d.y[:, :, horizon]) & np.isfinite(d.close)
    ok[: window - 1] = False
    rows, tickers = np.nonzero(ok)
    return rows, tickers


# ---- linear models (closed-form ridge, pooled over tickers) ----


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    x1 = np.hstack([x, np.ones((len(x), 1))])
    penalty = alpha * np.eye(x1.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(x1.T @ x1 + penalty, x1.T @ y)


def ridge_apply(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.asarray(x @ w[:-1] + w[-1])


def ridge_variant(
    d: Data, cols: list[int], horizon: int, refit_daily: bool, per_ticker: bool = False
) -> tuple[np.ndarray, str]:
    """Standardized forecasts [minutes, tickers] (NaN where none) of a ridge pooled over tickers (or one per
    ticker); the penalty is chosen on the validation sessions."""
    xs, ys = d.x[..., cols], d.y[..., horizon]
    out = np.full(ys.shape, np.nan)
    groups = [[j] for j in range(len(d.tickers))] if per_ticker else [list(range(len(d.tickers)))]
    chosen = []
    for g in groups:
        tr, va = (pairs(d, p, 1, horizon) for p in ("train", "valid"))
        tr = (tr[0][np.isin(tr[1], g)], tr[1][np.isin(tr[1], g)])
        va = (va[0][np.isin(va[1], g)], va[1][np.isin(va[1], g)])

        def validation_mse(
            alpha: float, tr: tuple[np.ndarray, np.ndarray] = tr, va: tuple[np.ndarray, np.ndarray] = va
        ) -> float:
            return float(np.mean((ridge_apply(ridge(xs[tr], ys[tr], alpha), xs[va]) - ys[va]) ** 2))

        best = min(RIDGE_ALPHAS, key=validation_mse)
        chosen.append(best)
        out[:, g] = ridge_apply(ridge(xs[tr], ys[tr], best), xs[:, g])
        if refit_daily:
            # Before each test session: refit on every finished session (its targets are all known by then).
            for s in np.unique(d.session[d.parts["test"]]):
                seen = np.isfinite(ys) & (d.session < s)[:, None]
                seen[:, [j for j in range(len(d.tickers)) if j not in g]] = False
                today = d.session == s
                out[np.ix_(today, g)] = ridge_apply(ridge(xs[seen], ys[seen], best), xs[np.ix_(today, g)])
    return out, "alpha=" + ",".join(f"{a:g}" for a in sorted(set(chosen)))


# ---- LSTMs ----


def gather(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, window: int) -> np.ndarray:
    idx = rows[:, None] + np.arange(1 - window, 1)[None, :]
    return np.ascontiguousarray(values[idx, cols[:, None]], dtype=np.float32)


def lstm_variant(
    d: Data,
    layers: int,
    units: int,
    window: int,
    closes_only: bool,
    budget: float,
    seed: int = 0,
    max_epochs: int = 40,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Forecast log returns as trained, and centred (minus the net's mean output per ticker on its own
    training windows: a constant offset learned from noise is not a forecast), and a note."""
    torch.manual_seed(seed)
    if closes_only:
        # Today's recipe: returns / training std in and out, no de-meaning (the overnight step reads 0).
        std = np.nanstd(d.returns[d.parts["train"]], axis=0)
        values = np.nan_to_num(d.returns / std)[..., None].astype(np.float32)
        target = np.full(d.returns.shape, np.nan)
        target[:-1] = d.returns[1:] / std
        target[:-1][d.session[1:] != d.session[:-1]] = np.nan
        net: nn.Module = ForecastLSTM(1, units, layers)
    else:
        values, target = d.x, d.y[..., 0].astype(np.float64)
        net = feature_lstm(d.x.shape[-1], units, layers)
    tr, va, te = (pairs(d, p, window) for p in ("train", "valid", "test"))

    def xy(p: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return gather(values, *p, window), target[p].astype(np.float32)[:, None]

    (trx, try_), (vax, vay) = xy(tr), xy(va)
    deadline = time.perf_counter() + budget
    report = fit_windows(
        net, make_optimizer(net, 1e-3), (trx, try_), (vax, vay),
        max_epochs=max_epochs, patience=4, batch_size=256, seed=seed, epoch_windows=16_384,
        should_stop=lambda: time.perf_counter() > deadline,
    )  # fmt: skip
    out = np.full(target.shape, np.nan)
    for part in (va, te):
        out[part] = predict(net, gather(values, *part, window))[:, 0]
    on_train = predict(net, trx)[:, 0]
    offset = output_offsets(on_train, tr[1], len(d.tickers))
    note = f"{report.epochs} ep (best {report.best_epoch}), {report.seconds:.0f}s"
    note += " time-boxed" if time.perf_counter() > deadline else ""

    # Log returns: today's recipe as it is (its output times the return std, bias and all); the feature
    # nets' de-meaned standardized output without the training drift.
    def returns(z: np.ndarray) -> np.ndarray:
        return z * std if closes_only else to_returns(d, z, 0)

    return returns(out), returns(out - offset[None, :]), note


def to_returns(d: Data, z: np.ndarray, horizon_i: int, drift: bool = False) -> np.ndarray:
    """Standardized forecasts [minutes, tickers] -> log returns over that horizon (the training drift added
    back only with ``drift``, as ``FeatureModel.to_return`` does)."""
    return d.model.to_return(z[..., None], keep_training_drift=drift)[..., horizon_i]
