"""Training examples from regularized closes: features, sliding windows, the chronological 8:2 split. No I/O.

Values are 2-D, ``[minutes, columns]``: one column for a ticker in ``per_stock`` mode, one per ticker in
``portfolio`` mode. Windows are cut inside a segment only, so none spans a gap the policy did not fill.

The split is by time: the first ``train_fraction`` of the minutes train, the rest is the hold-out. A
hold-out window may look back into the training part (that is the past, known at forecast time), but the
scalers are fitted on training values only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.trainer.model.scaling import PriceScaler, ReturnScaler, Scaler

Target = Literal["return", "price"]


def log_returns(closes: np.ndarray) -> np.ndarray:
    """Log returns along the minutes axis: one row fewer than ``closes``."""
    return np.diff(np.log(closes), axis=0)


def sliding(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``values[i:i+window]`` and targets ``values[i+window]`` for every i that fits."""
    n = len(values) - window
    if n <= 0:
        return np.empty((0, window, *values.shape[1:])), np.empty((0, *values.shape[1:]))
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)[:n]
    # sliding_window_view puts the window last: [n, columns, window] -> [n, window, columns]
    return np.ascontiguousarray(np.moveaxis(view, -1, 1)), values[window:]


def input_length(window: int, target: Target) -> int:
    """Closes needed to forecast once: a return window needs one close more than it has returns."""
    return window + 1 if target == "return" else window


def fit_scalers(train_values: Sequence[np.ndarray], target: Target) -> list[Scaler]:
    """One scaler per column, fitted on the training segments' closes (never on the hold-out)."""
    stacked = np.concatenate([v for v in train_values if len(v)], axis=0)
    if target == "price":
        return [PriceScaler.fit(stacked[:, j]) for j in range(stacked.shape[1])]
    returns = np.concatenate([log_returns(v) for v in train_values if len(v) > 1], axis=0)
    return [ReturnScaler.fit(returns[:, j]) for j in range(stacked.shape[1])]


def scale(closes: np.ndarray, scalers: Sequence[Scaler]) -> np.ndarray:
    """Closes ``[minutes, columns]`` -> the model's values (scaled closes or scaled log returns)."""
    values = log_returns(closes) if isinstance(scalers[0], ReturnScaler) else closes
    out = np.empty_like(values, dtype=np.float32)
    for j, scaler in enumerate(scalers):
        out[:, j] = scaler.transform(values[:, j])
    return out


def to_price(scaled: np.ndarray, last_close: np.ndarray, scalers: Sequence[Scaler]) -> np.ndarray:
    """Model outputs ``[n, columns]`` -> forecast closes; a return is rebuilt as last close × exp(r̂)."""
    out = np.empty(scaled.shape, dtype=np.float64)
    for j, scaler in enumerate(scalers):
        if isinstance(scaler, ReturnScaler):
            out[:, j] = last_close[:, j] * np.exp(scaler.inverse(scaled[:, j].astype(np.float64)))
        else:
            out[:, j] = scaler.inverse(scaled[:, j].astype(np.float64))
    return out


def to_price_rows(scaled: np.ndarray, last_close: np.ndarray, scalers: Sequence[Scaler]) -> np.ndarray:
    """:func:`to_price` for ``n`` single-column series at once: ``scaled`` and ``last_close`` [n], one scaler
    per row. Vectorized (the forecast of a bar for every ticker pays no per-ticker numpy call), with the
    same float64 operations as :func:`to_price`, so the same prices."""
    values = np.asarray(scaled).astype(np.float64)  # a float32 model output widens exactly as in to_price
    last = np.asarray(last_close, dtype=np.float64)
    if all(isinstance(s, ReturnScaler) for s in scalers):
        return last * np.exp(values * np.array([s.scale for s in scalers]))  # type: ignore[union-attr]
    if all(isinstance(s, PriceScaler) for s in scalers):
        spreads = np.array([s.spread for s in scalers])  # type: ignore[union-attr]
        return values * spreads + np.array([s.low for s in scalers])  # type: ignore[union-attr]
    return np.array([to_price(values[i : i + 1, None], last[i : i + 1, None], [s])[0, 0]
                     for i, s in enumerate(scalers)])  # fmt: skip


def scale_rows(closes: np.ndarray, scalers: Sequence[Scaler]) -> np.ndarray:
    """:func:`scale` for ``n`` single-column series of equal length at once: ``closes`` [n, minutes] ->
    [n, values] float32, one scaler per row, the same numbers as :func:`scale` row by row."""
    if all(isinstance(s, ReturnScaler) for s in scalers):
        factors = np.array([s.scale for s in scalers])  # type: ignore[union-attr]
        return (np.diff(np.log(closes), axis=1) / factors[:, None]).astype(np.float32)
    return np.stack([scale(row[:, None], [s])[:, 0] for row, s in zip(closes, scalers, strict=True)])


@dataclass
class Examples:
    """Windows ``x`` [n, window, columns], targets ``y`` [n, columns], and in price units the last close
    before each target (``last``) and the actual close (``actual``), for scoring against naive. Windows of
    one ``run`` are consecutive minutes of one segment, ``pos`` their position in it (``chunks.py`` reads
    them as one sequence); ``minute`` is the minute each target closes (the pooled test groups by it)."""

    x: np.ndarray
    y: np.ndarray
    last: np.ndarray
    actual: np.ndarray
    pos: np.ndarray
    run: np.ndarray
    minute: np.ndarray

    @classmethod
    def empty(cls, window: int, columns: int) -> Examples:
        none = np.empty(0, np.int64)
        return cls(
            np.empty((0, window, columns), np.float32),
            np.empty((0, columns), np.float32),
            np.empty((0, columns)),
            np.empty((0, columns)),
            none,
            none.copy(),
            none.copy(),
        )

    def __len__(self) -> int:
        return len(self.x)

    @staticmethod
    def concat(parts: Sequence[Examples]) -> Examples:
        runs, offset = [], 0
        for p in parts:
            runs.append(p.run + offset)
            offset += int(p.run.max()) + 1 if len(p.run) else 0
        return Examples(
            np.concatenate([p.x for p in parts]).astype(np.float32),
            np.concatenate([p.y for p in parts]).astype(np.float32),
            np.concatenate([p.last for p in parts]),
            np.concatenate([p.actual for p in parts]),
            np.concatenate([p.pos for p in parts]).astype(np.int64),
            np.concatenate(runs).astype(np.int64),
            np.concatenate([p.minute for p in parts]).astype(np.int64),
        )


def examples(
    closes: np.ndarray, window: int, scalers: Sequence[Scaler], first: int = 0, minute: int = 0
) -> Examples:
    """Every window of one segment of closes ``[minutes, columns]``; ``first``: the position of its first
    window in the segment (a hold-out part starts inside one), ``minute``: the minute of ``closes[0]``."""
    columns = closes.shape[1]
    values = scale(closes, scalers)
    x, y = sliding(values, window)
    if not len(x):
        return Examples.empty(window, columns)
    # The target of example i is close index (offset + i) with offset = window (+1 for returns).
    offset = len(closes) - len(y)
    pos = first + np.arange(len(x), dtype=np.int64)
    run = np.zeros(len(x), np.int64)
    return Examples(x, y, closes[offset - 1 : -1], closes[offset:], pos, run, minute + offset + pos - first)


@dataclass
class Prepared:
    scalers: list[Scaler]
    train: Examples
    holdout: Examples


def prepare(
    segments: Sequence[np.ndarray],
    window: int,
    target: Target,
    train_fraction: float = 0.8,
    starts: Sequence[int] | None = None,
) -> Prepared | None:
    """Split ``segments`` (each ``[minutes, columns]``, starting at the minutes ``starts``) by time, fit the
    scalers on the first part, and build the training and hold-out windows. None when either part would
    have no window."""
    starts = [0] * len(segments) if starts is None else starts
    total = sum(len(s) for s in segments)
    boundary = int(total * train_fraction)
    train_parts: list[np.ndarray] = []
    seen = 0
    for seg in segments:
        if seen < boundary:
            train_parts.append(seg[: boundary - seen])
        seen += len(seg)
    if not any(len(p) > 1 for p in train_parts):
        return None
    scalers = fit_scalers(train_parts, target)
    train: list[Examples] = []
    holdout: list[Examples] = []
    seen = 0
    context = input_length(window, target)
    for seg, minute in zip(segments, starts, strict=True):
        cut = min(max(boundary - seen, 0), len(seg))
        if cut > 0:
            train.append(examples(seg[:cut], window, scalers, minute=minute))
        if cut < len(seg):
            # The hold-out windows' targets are the closes from ``cut`` on; their inputs may reach back.
            start = max(cut - context, 0)
            holdout.append(examples(seg[start:], window, scalers, first=start, minute=minute + start))
        seen += len(seg)
    columns = segments[0].shape[1]
    train_ex = Examples.concat(train) if train else Examples.empty(window, columns)
    hold_ex = Examples.concat(holdout) if holdout else Examples.empty(window, columns)
    if not len(train_ex) or not len(hold_ex):
        return None
    return Prepared(scalers, train_ex, hold_ex)
