"""What the per-stock model's cold start fits beside the network: per-ticker output offsets (centring) and
the 80% forecast interval. No I/O.

* **Centring** (issue 13 research, /README): with almost no signal at one minute, a net's output is mostly
  a constant per ticker, which early stopping on a drifting validation part even rewards; raw nets said
  "up" 0-35% of the minutes. The offset is the net's mean output on the ticker's own training windows
  (:func:`features.output_offsets`), subtracted from every forecast; no training drift is added back.
  A join computes the joining ticker's. Warm updates (a few steps a minute on the newest windows) drift the
  net's output level again, the same way for every ticker (a backtest without this: "up" 69% of minutes):
  after each, the net's mean output on a fixed sample of cold-start training windows, less what the
  cold-start net gave on them, is subtracted too (``shift``).
* **Interval**: σ̂ from :class:`intervals.VolatilityModel` on the standardized returns (fitted on the
  training part, intraday pattern pooled over tickers), and pooled :class:`intervals.IntervalModel`
  quantiles of the hold-out residuals / σ̂ (data the network was not fitted on), so the interval includes
  the model's own error. Published as the 10% and 90% quantiles of the next close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.trainer.intervals.volatility import IntervalModel, VolatilityModel
from services.trainer.model.chunks import predict_windows
from services.trainer.model.network import ForecastLSTM, predict
from services.trainer.model.series import Segment, regularize
from services.trainer.model.windows import Examples, Prepared
from shared.session import XNYS, SessionClock, clock_named

# Past returns a live σ̂ looks at: the weight left beyond them is 0.5 ** (TAIL / halflife) (~1e-4 at 30).
TAIL = 400
PROBS = (0.1, 0.9)


def standardized_returns(segments: Sequence[Segment], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """One row per close of the segments: the log return ending there / ``scale`` (NaN at a segment's first
    close: no return spans a cut) and its epoch minute."""
    z, minutes = [], []
    for seg in segments:
        r = np.full(len(seg.closes), np.nan)
        r[1:] = np.diff(np.log(seg.closes)) / scale
        z.append(r)
        minutes.append(seg.start + np.arange(len(seg.closes)))
    if not z:
        return np.empty(0), np.empty(0, dtype=np.int64)
    return np.concatenate(z), np.concatenate(minutes)


def last_sigma(vol: VolatilityModel, z: np.ndarray, session: np.ndarray) -> float:
    """``vol.sigma(z[:, None], session)[-1, 0]`` in numpy, for one ticker's tail (the live path)."""
    pattern = vol.pattern[np.clip(session // vol.bucket, 0, len(vol.pattern) - 1)]
    d = z / vol.scale[0] / pattern
    d = d[np.isfinite(d)]
    level = 1.0
    if len(d):
        w = 0.5 ** (np.arange(len(d) - 1, -1, -1) / vol.halflife)
        level = float(np.sum(w * d * d) / np.sum(w))
    ahead = vol.pattern[np.clip((session[-1] + 1) // vol.bucket, 0, len(vol.pattern) - 1)]
    return float(np.sqrt(level) * ahead * vol.scale[0])


# Training windows kept to measure the warm updates' drift of the output level (~20 ms per update).
REFERENCE_WINDOWS = 128


@dataclass
class Calibration:
    offsets: dict[str, float]
    volatility: VolatilityModel
    interval: IntervalModel
    # [n, window, 1] training windows sampled at the cold start, the cold-start net's mean output on them,
    # and the current net's mean output on them less that.
    reference: np.ndarray | None = None
    reference_mean: float = 0.0
    shift: float = 0.0
    # The clock of the volatility pattern's minutes of the session.
    session: SessionClock = XNYS

    def offset(self, ticker: str) -> float:
        return self.offsets.get(ticker, 0.0) + self.shift

    def drift(self, model: ForecastLSTM) -> float:
        """The ``shift`` for new weights (call outside the lock, then assign under it)."""
        if self.reference is None or not len(self.reference):
            return self.shift
        return float(np.mean(predict(model, self.reference))) - self.reference_mean

    def bounds(
        self, minutes: Sequence[int], closes: Sequence[float], scale: float, forecast: float, ffill_max: int
    ) -> tuple[float, float] | None:
        """10% and 90% quantiles of the next close, from the ticker's raw tail (``minutes``, ``closes``),
        its return scale and the forecast close; None when not finite and positive."""
        segments = regularize(list(minutes[-TAIL:]), list(closes[-TAIL:]), ffill_max)
        z, at = standardized_returns(segments, scale)
        sigma = last_sigma(self.volatility, z, self.session.minute_of_tail(at)) * scale
        last = closes[-1]
        q = self.interval.close_bounds(
            np.array([last]), np.log(np.array([forecast / last])), np.array([sigma])
        )
        low, high = float(q[0, 0]), float(q[0, 1])
        if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
            return None
        return low, high

    def state(self) -> dict[str, object]:
        v, i = self.volatility, self.interval
        return {
            "offsets": dict(self.offsets),
            "volatility": {"scale": v.scale.tolist(), "pattern": v.pattern.tolist(), "bucket": v.bucket,
                           "halflife": v.halflife},
            "interval": {"probs": list(i.probs), "quantiles": i.quantiles.tolist()},
            "reference": None if self.reference is None else self.reference.tolist(),
            "reference_mean": self.reference_mean,
            "shift": self.shift,
            "session": self.session.name,
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Calibration:
        v, i = state["volatility"], state["interval"]
        assert isinstance(v, dict) and isinstance(i, dict) and isinstance(state["offsets"], dict)
        return cls(
            {str(t): float(x) for t, x in state["offsets"].items()},
            VolatilityModel(np.asarray(v["scale"]), np.asarray(v["pattern"]), int(v["bucket"]),
                            float(v["halflife"])),
            IntervalModel(tuple(i["probs"]), np.asarray(i["quantiles"])),
            None if state.get("reference") is None else np.asarray(state["reference"], dtype=np.float32),
            float(state.get("reference_mean", 0.0)),  # type: ignore[arg-type]
            float(state.get("shift", 0.0)),  # type: ignore[arg-type]
            # Calibrations saved before the session was a setting were fitted on New York's clock.
            clock_named(str(state.get("session", XNYS.name))),
        )  # fmt: skip


def output_offsets(outputs: np.ndarray, ticker: np.ndarray, tickers: int) -> np.ndarray:
    """A net's mean output per ticker ``[tickers]`` on its training windows (``outputs[i]`` from a window of
    ticker ``ticker[i]``), to subtract from every forecast: with almost no signal the output is mostly a
    constant offset (a bias early stopping on a drifting validation part even rewards). No windows: 0."""
    counts = np.bincount(ticker, minlength=tickers)
    sums = np.bincount(ticker, weights=np.asarray(outputs, dtype=np.float64), minlength=tickers)
    return np.divide(sums, counts, out=np.zeros(tickers), where=counts > 0)


def ticker_offsets(model: ForecastLSTM, prepared: dict[str, Prepared], window: int) -> dict[str, float]:
    """Each ticker's mean net output on its training windows (read in chunks, as served)."""
    names = list(prepared)
    outputs = predict_windows(model, Examples.concat([prepared[t].train for t in names]), window)[:, 0]
    index = np.concatenate([np.full(len(prepared[t].train), j) for j, t in enumerate(names)])
    offsets = output_offsets(outputs, index, len(names))
    return {t: float(offsets[j]) for j, t in enumerate(names)}


def _holdout_rows(segments: Sequence[Segment], context: int, train_fraction: float) -> tuple[np.ndarray, int]:
    """Row indices (into :func:`standardized_returns` of ``segments``) of the hold-out targets, in the order
    ``windows.prepare`` builds them, and the number of training rows."""
    boundary = int(sum(len(s.closes) for s in segments) * train_fraction)
    rows, seen = [], 0
    for seg in segments:
        cut = min(max(boundary - seen, 0), len(seg.closes))
        rows.append(seen + np.arange(max(cut, context), len(seg.closes)))
        seen += len(seg.closes)
    return np.concatenate(rows).astype(np.int64), boundary


def fit_calibration(
    model: ForecastLSTM,
    prepared: dict[str, Prepared],
    segments: dict[str, list[Segment]],
    window: int,
    train_fraction: float = 0.8,
    session: SessionClock = XNYS,
) -> Calibration | None:
    """Offsets, σ̂ model and interval quantiles for a per-stock (return target) cold start: ``prepared`` and
    ``segments`` as the cold start built them (the same split), the intraday pattern by the ``session``
    clock. None when there is nothing to fit on."""
    offsets = ticker_offsets(model, prepared, window)
    rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
    train_z, train_at = [], []
    for t, p in prepared.items():
        scale = float(getattr(p.scalers[0], "scale", np.nan))
        z, at = standardized_returns(segments[t], scale)
        holdout, boundary = _holdout_rows(segments[t], window + 1, train_fraction)
        if len(holdout) != len(p.holdout):
            raise ValueError(f"{t}: {len(holdout)} hold-out rows, prepare built {len(p.holdout)}")
        rows[t] = (z, session.minute_of(at), holdout, boundary)
        train_z.append(z[:boundary])
        train_at.append(rows[t][1][:boundary])
    if not rows:
        return None
    vol = VolatilityModel.fit(
        np.concatenate(train_z)[:, None], np.concatenate(train_at), length=session.length
    )
    residuals, sigmas = [], []
    for t, (z, minute, holdout, _) in rows.items():
        out = predict_windows(model, prepared[t].holdout, window)[:, 0] - offsets[t]
        sigma = vol.sigma(z[:, None], minute)[:, 0]
        # Target row k is forecast from row k - 1: its σ̂ and its output, in standardized units.
        residuals.append(z[holdout] - out)
        sigmas.append(sigma[holdout - 1])
    interval = IntervalModel.fit(np.concatenate(residuals)[:, None], np.concatenate(sigmas)[:, None], PROBS)
    pooled = np.concatenate([p.train.x for p in prepared.values()])
    pick = np.random.default_rng(0).choice(len(pooled), min(REFERENCE_WINDOWS, len(pooled)), replace=False)
    reference = np.ascontiguousarray(pooled[np.sort(pick)], dtype=np.float32)
    reference_mean = float(np.mean(predict(model, reference)))
    return Calibration(offsets, vol, interval, reference, reference_mean, session=session)
