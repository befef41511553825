"""Which forecaster earns its cost on real 1-minute bars (issue 13): one walk-forward table.

Reads the shared recording (``../shared/data/``, 10 tickers, 20 sessions; never copied into the repo).
Sessions split in time: the first 60% train, the next 10% validate (early stopping, ridge penalty, interval
quantiles), the last 30% test. Every statistic (feature scalers, usual volume, target mean and scale,
volatility pattern) comes from the training sessions; nothing is chosen on the test part. The test part is
forecast by frozen models (the ``daily refit`` row refits the ridge on every finished session before the
next one, walk-forward). Scores use relative errors ``(forecast - actual) / last close``, one Diebold-
Mariano test per row on the per-minute mean loss difference to naive (Newey-West variance), direction on
minutes whose close moved, and 80% intervals ``r̂ + σ̂·q`` from ``services.trainer.intervals``.

    PYTHONPATH=. .venv/bin/python bench/forecast_variants.py [--budget 150] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from services.trainer.evaluation import wilson_interval
from services.trainer.features import (
    FeatureModel,
    FeatureSpec,
    align_bars,
    frames_from_long,
    output_offsets,
    session_returns,
)
from services.trainer.intervals import IntervalModel, VolatilityModel, coverage
from services.trainer.model import ForecastLSTM, predict
from services.trainer.training import fit, make_optimizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-1m-2024-02-26_2024-03-22.csv.gz"
RIDGE_ALPHAS = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7)


class FeatureLSTM(nn.Module):
    """An LSTM over feature windows with one output (the standardized next return)."""

    def __init__(self, features: int, units: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, units, num_layers=layers, batch_first=True)
        self.head = nn.Linear(units, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        result: torch.Tensor = self.head(out[:, -1, :])
        return result


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
    return np.nonzero(ok)


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
        tr, va = (tuple(a for a in pairs(d, p, 1, horizon)) for p in ("train", "valid"))
        tr = tuple(a[np.isin(tr[1], g)] for a in tr)
        va = tuple(a[np.isin(va[1], g)] for a in va)
        best = min(
            RIDGE_ALPHAS,
            key=lambda a, tr=tr, va=va: float(
                np.mean((ridge_apply(ridge(xs[tr], ys[tr], a), xs[va]) - ys[va]) ** 2)
            ),
        )
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
        net = FeatureLSTM(d.x.shape[-1], units, layers)
    tr, va, te = (pairs(d, p, window) for p in ("train", "valid", "test"))

    def xy(p: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return gather(values, *p, window), target[p].astype(np.float32)[:, None]

    (trx, try_), (vax, vay) = xy(tr), xy(va)
    deadline = time.perf_counter() + budget
    report = fit(
        net,  # type: ignore[arg-type]
        make_optimizer(net, 1e-3),
        trx, try_, vax, vay,
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


# ---- scoring ----


def dm_pvalue(loss_diff: np.ndarray, lag: int) -> tuple[float, float]:
    """Diebold-Mariano statistic and two-sided p-value of mean(loss_diff) = 0, Newey-West variance."""
    d = loss_diff[np.isfinite(loss_diff)]
    n, mean = len(d), float(np.mean(d))
    c = d - mean
    var = float(c @ c) / n
    for k in range(1, lag + 1):
        var += 2 * (1 - k / (lag + 1)) * float(c[k:] @ c[:-k]) / n
    stat = mean / math.sqrt(max(var, 1e-300) / n)
    return stat, math.erfc(abs(stat) / math.sqrt(2))


def to_returns(d: Data, z: np.ndarray, horizon_i: int, drift: bool = False) -> np.ndarray:
    """Standardized forecasts [minutes, tickers] -> log returns over that horizon (the training drift added
    back only with ``drift``, as ``FeatureModel.to_return`` does)."""
    return d.model.to_return(z[..., None], keep_training_drift=drift)[..., horizon_i]


def score(d: Data, r_hat: np.ndarray, horizon_i: int, part: str, ivl: IntervalModel | None = None) -> dict:
    h = d.model.spec.horizons[horizon_i]
    rows, cols = pairs(d, part, 60, horizon_i)
    mask = np.zeros(d.close.shape, bool)
    mask[rows, cols] = True
    last = d.close
    actual = np.full(d.close.shape, np.nan)
    actual[:-h] = d.close[h:]
    e_m = np.where(mask, (last * np.exp(r_hat) - actual) / last, np.nan)
    e_n = np.where(mask, (last - actual) / last, np.nan)
    per_ticker = np.nansum(e_m**2, axis=0) / np.nansum(e_n**2, axis=0)
    used = mask.any(axis=1)
    diff = np.nanmean((e_m**2 - e_n**2)[used], axis=1)
    stat, p = dm_pvalue(diff, lag=max(h, int(4 * (len(diff) / 100) ** (2 / 9))))
    move = mask & (actual != last)
    hits = int(np.sum(np.sign(r_hat[move]) == np.sign((actual - last)[move])))
    lo, hi = wilson_interval(hits, int(move.sum()))
    f, a = r_hat[mask], np.log(actual[mask] / last[mask])
    out = {
        "ratio": float(np.nansum(e_m**2) / np.nansum(e_n**2)), "dm": stat, "p": p,
        "worst": float(per_ticker.max()), "worst_t": d.tickers[int(per_ticker.argmax())],
        "dir": hits / max(int(move.sum()), 1), "lo": lo, "hi": hi, "up": float(np.mean(f > 0)),
        "corr": float(np.corrcoef(f, a)[0, 1]) if np.std(f) > 0 else float("nan"), "n": int(mask.sum()),
    }  # fmt: skip
    if ivl is not None:
        sigma = d.vol.sigma(d.returns, d.minute, horizon=h)
        b = ivl.close_bounds(last, r_hat, sigma)
        table = coverage(np.where(mask, actual, np.nan), b[..., 0], b[..., 1], d.tickers)
        shares = [table[t].share or 0.0 for t in d.tickers]
        out |= {"cov": table["*"].share, "cov_lo": min(shares), "cov_hi": max(shares)}
    return out


def intervals_for(d: Data, r_hat: np.ndarray, horizon_i: int) -> IntervalModel:
    """Quantiles of validation residuals / σ̂ (the point model never saw the validation targets)."""
    h = d.model.spec.horizons[horizon_i]
    rows, cols = pairs(d, "valid", 60, horizon_i)
    r_true = to_returns(d, d.y[..., horizon_i].astype(np.float64), horizon_i, drift=True)
    resid = np.full(d.close.shape, np.nan)
    resid[rows, cols] = (r_true - r_hat)[rows, cols]
    return IntervalModel.fit(resid, d.vol.sigma(d.returns, d.minute, horizon=h))


HEAD = (
    f"{'variant':40} {'valid':>6} {'ratio':>7} {'DM p':>7} {'worst tk':>12} {'dir % [95% CI]':>17}"
    f" {'up %':>5} {'corr':>6} {'80% cov (tk min-max)':>21}  notes"
)


def row(label: str, v: dict, s: dict, note: str, naive: bool = False) -> str:
    """One table line: validation ratio, then the test part's scores."""
    direction = (
        f"{'–':>17}" if naive else f"{100 * s['dir']:5.1f} [{100 * s['lo']:4.1f}-{100 * s['hi']:4.1f}]"
    )
    return (
        f"{label:40} {v['ratio']:6.4f} {s['ratio']:7.4f} {s['p']:7.3f} {s['worst']:6.4f} {s['worst_t']:>5} "
        f"{direction} {100 * s['up']:5.1f} {s['corr']:6.3f} "
        f"{100 * s['cov']:5.1f} ({100 * s['cov_lo']:4.1f}-{100 * s['cov_hi']:4.1f})  {note}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", type=float, default=150.0, help="seconds of training per LSTM variant")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads: 1 is ~10x faster than 2 on a busy 2-core box"
    )
    ap.add_argument("--skip-lstm", action="store_true")
    ap.add_argument("--lstm", default="", help="only the LSTM rows whose label contains this")
    ap.add_argument("--seed-offset", type=int, default=0, help="added to every LSTM seed (robustness runs)")
    ap.add_argument("--max-epochs", type=int, default=40)
    ap.add_argument(
        "--split", type=float, nargs=2, default=(0.6, 0.1), metavar=("TRAIN", "VALID"),
        help="shares of the sessions that train and validate; the test part follows",
    )  # fmt: skip
    ap.add_argument(
        "--test-end", type=float, default=1.0, help="share of the sessions where the test part ends"
    )
    args = ap.parse_args()
    if not args.data.exists():
        print(
            f"no recording at {args.data} (see ../shared/data/README.md); nothing to compare", file=sys.stderr
        )
        return 2
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    d = load(args.data, *args.split, (1, 5, 15), test_end=args.test_end)
    names = d.model.spec.names
    own = [i for i, n in enumerate(names) if n.startswith("ret_")]
    naive = np.zeros(d.y.shape[:2])
    variants: list[tuple[str, np.ndarray, str]] = [("naive (last close)", naive, "")]

    def linear(label: str, cols: list[int], refit: bool = False, per_ticker: bool = False) -> None:
        z, note = ridge_variant(d, cols, 0, refit, per_ticker)
        variants.append((label, to_returns(d, z, 0), note))

    every = list(range(len(names)))
    linear("AR(5) ridge, own returns", own)
    linear("AR(5) ridge per ticker", own, per_ticker=True)
    linear("ridge, all features", every)
    linear("ridge, all features, per ticker", every, per_ticker=True)
    linear("ridge, all features, daily refit", every, refit=True)
    z, note = ridge_variant(d, every, 0, False)
    variants.append(("ridge, all features + train drift", to_returns(d, z, 0, drift=True), note))
    if not args.skip_lstm:
        for label, layers, units, window, closes, seed in (
            ("LSTM 4x50 closes only (today)", 4, 50, 60, True, 0),
            ("LSTM 4x50 features", 4, 50, 30, False, 0),
            ("LSTM 2x50 features", 2, 50, 30, False, 0),
            ("LSTM 2x50 features seed 1", 2, 50, 30, False, 1),
            ("LSTM 1x32 features", 1, 32, 30, False, 0),
            ("LSTM 1x32 features seed 1", 1, 32, 30, False, 1),
        ):
            if args.lstm not in label:
                continue
            t0 = time.perf_counter()
            seed += args.seed_offset
            r_hat, centred, note = lstm_variant(
                d, layers, units, window, closes, args.budget, seed, args.max_epochs
            )
            note += f" seed {seed}"
            variants += [(label, r_hat, note), (label.replace("LSTM", "LSTM centred"), centred, note)]
            print(f"  trained {label}: {note} ({time.perf_counter() - t0:.0f}s total)", flush=True)
    print("\nh=1 minute, test sessions only; MSE on errors / last close; DM vs naive (Newey-West)")
    print(HEAD)
    for label, r_hat, note in variants:
        s = score(d, r_hat, 0, "test", intervals_for(d, r_hat, 0))
        print(row(label, score(d, r_hat, 0, "valid"), s, note, naive=label.startswith("naive")))
    print(f"n = {s['n']:,} test forecasts per row")
    print("\nlonger horizons (ridge refit per horizon; each scored against its own naive)")
    for hi, h in enumerate(d.model.spec.horizons[1:], start=1):
        for label, cols in (("AR(5) ridge", own), ("ridge, all features", list(range(len(names))))):
            z, note = ridge_variant(d, cols, hi, False)
            r_hat = to_returns(d, z, hi)
            s = score(d, r_hat, hi, "test", intervals_for(d, r_hat, hi))
            print(
                f"h={h:2} {label:22} ratio {s['ratio']:.4f} DM p {s['p']:.3f} worst {s['worst']:.4f} "
                f"dir {100 * s['dir']:.1f} [{100 * s['lo']:.1f}-{100 * s['hi']:.1f}] up {100 * s['up']:.1f} "
                f"80% cov {100 * s['cov']:.1f}  {note}"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f}s, torch threads {torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
