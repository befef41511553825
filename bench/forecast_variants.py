"""Which forecaster earns its cost on real 1-minute bars (issue 13): one walk-forward table.

Reads the shared recording (``../shared/data/``, 10 tickers, 20 sessions; never copied into the repo).
Sessions split in time: the first 60% train, the next 10% validate (early stopping, ridge penalty, interval
quantiles), the last 30% test. Every statistic (feature scalers, usual volume, target mean and scale,
volatility pattern) comes from the training sessions; nothing is chosen on the test part. The test part is
forecast by frozen models (the ``daily refit`` row refits the ridge on every finished session before the
next one, walk-forward). Scores use relative errors ``(forecast - actual) / last close``, one Diebold-
Mariano test per row (Newey-West variance), direction on minutes whose close moved, and the coverage of 80%
intervals ``r̂ + σ̂·q`` (``services.trainer.intervals.volatility``): the trainer's one scorer,
``services.scoring.score``, the same numbers ``portfolio backtest`` prints.

    PYTHONPATH=. .venv/bin/python bench/forecast_variants.py [--budget 150] [--threads 1]

Data and forecasters: ``bench/forecast_models.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from math import nan
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.forecast_models import Data, load, lstm_variant, pairs, ridge_variant, to_returns
from services.scoring.predictions import interval_coverage, scores_by_ticker
from services.scoring.score import POOLED
from services.trainer.intervals.volatility import IntervalModel

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-1m-2024-02-26_2024-03-22.csv.gz"


# ---- scoring ----


def score(
    d: Data, r_hat: np.ndarray, horizon_i: int, part: str, ivl: IntervalModel | None = None
) -> dict[str, Any]:
    """One part's forecasts scored by the trainer's one scorer (``services.scoring.score``: relative
    errors, DM with Newey-West per ticker then pooled, Wilson direction, interval coverage); ``up`` and
    ``corr`` describe the forecasts."""
    h = d.model.spec.horizons[horizon_i]
    rows, cols = pairs(d, part, 60, horizon_i)
    last, f = d.close[rows, cols], r_hat[rows, cols]
    frame = pd.DataFrame(
        {"ticker": np.asarray(d.tickers)[cols], "row": rows, "naive": last, "actual": d.close[rows + h, cols],
         "yhat": last * np.exp(f), "model_version": "bench"}
    )  # fmt: skip
    if ivl is not None:
        b = ivl.close_bounds(d.close, r_hat, d.vol.sigma(d.returns, d.minute, horizon=h))
        frame["q10"], frame["q90"] = b[rows, cols, 0], b[rows, cols, 1]
    frame = frame.sort_values(["ticker", "row"], kind="stable")
    scores = scores_by_ticker(frame)
    pooled = scores[POOLED].summary()
    ratios = {t: scores[t].mse_ratio or 1.0 for t in d.tickers if t in scores}
    worst_t = max(ratios, key=lambda t: ratios[t])
    a = np.log(d.close[rows + h, cols] / last)
    out = {
        "ratio": pooled["mse_ratio"], "p": nan if pooled["dm_p"] is None else pooled["dm_p"],
        "worst": ratios[worst_t], "worst_t": worst_t,
        "dir": pooled["directional_accuracy"] or 0.0, "lo": pooled["directional_ci_low"] or 0.0,
        "hi": pooled["directional_ci_high"] or 0.0, "up": float(np.mean(f > 0)), "n": pooled["n"],
        "corr": float(np.corrcoef(f, a)[0, 1]) if np.std(f) > 0 else float("nan"),
    }  # fmt: skip
    if ivl is not None:
        covers = interval_coverage(frame)
        shares = [covers[t].share or 0.0 for t in d.tickers if t in covers]
        out |= {"cov": covers[POOLED].share, "cov_lo": min(shares), "cov_hi": max(shares)}
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


def row(label: str, v: dict[str, Any], s: dict[str, Any], note: str, naive: bool = False) -> str:
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
        "--threads", type=int, default=1, help="torch threads (1: ~10x faster on a busy 2-core box)"
    )
    ap.add_argument("--skip-lstm", action="store_true")
    ap.add_argument("--lstm", default="", help="only the LSTM rows whose label contains this")
    ap.add_argument("--seed-offset", type=int, default=0, help="added to every LSTM seed (robustness runs)")
    ap.add_argument("--max-epochs", type=int, default=40)
    ap.add_argument("--split", type=float, nargs=2, default=(0.6, 0.1), metavar=("TRAIN", "VALID"),
                    help="shares of the sessions that train and validate; the test part follows")  # fmt: skip
    ap.add_argument("--test-end", type=float, default=1.0, help="share of the sessions where the test ends")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"no recording at {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train, valid = args.split
    d = load(args.data, train, valid, (1, 5, 15), test_end=args.test_end)
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
            r_hat, centred, note = lstm_variant(
                d, layers, units, window, closes, args.budget, seed + args.seed_offset, args.max_epochs
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
