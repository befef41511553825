"""Carried LSTM state per ticker: a new bar costs one recurrent step, not a pass over the window. No I/O.

Each ticker's current segment (see ``series.py``: forward-filled minutes inside, a cut ends it) is read by
the network from an *anchor*: the state after the newest final bar is the LSTM run from zero over the
scaled returns from the anchor to that bar. The anchors lie every ``window`` returns from the segment's
start, and the network reads from the one that leaves between ``window`` and ``2 window - 1`` returns, so
the context stays bounded while a second ("shadow") state, started at the next anchor, is carried beside
the main one and takes over when it has read ``window`` returns. Both are stepped together, so no bar
ever pays for a pass over the window, and every forecast equals one full pass of the installed network over
the returns from its anchor (:func:`full_pass`, tested).

* A final bar steps the state (with the forward-filled minutes before it, if any) and stores it.
* A provisional bar is forecast from the stored state without storing: a revision is never stepped twice.
* Fewer than ``window`` returns since the segment's start: no forecast (the naive stand-in serves).
* New weights: every state is recomputed (:meth:`CarriedStates.prime`) on the training thread.

Inputs are ``[steps, features]`` per ticker (one feature today, the scaled log return), so richer inputs
per minute only widen the last axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from services.trainer.model import ForecastLSTM


@dataclass
class Carried:
    """One ticker's carried state: main (index 0) and shadow (index 1) along the batch axis."""

    start: int  # minute of the segment's first close
    minute: int  # minute of the newest final close stepped
    close: float  # that close
    h: torch.Tensor  # [layers, 2, units]
    c: torch.Tensor

    def returns_read(self) -> int:
        return self.minute - self.start

    def anchor(self, window: int) -> int:
        """Returns index (0 = the segment's first close) the main state started from."""
        return anchor_of(self.returns_read(), window)


def anchor_of(count: int, window: int) -> int:
    """The main state's anchor after ``count`` returns: the last multiple of ``window`` that leaves at
    least ``window`` returns to read (0 while fewer than ``2 window`` have been read)."""
    return max(0, (count - window) // window * window)


def anchors_of(counts: np.ndarray, window: int) -> np.ndarray:
    """:func:`anchor_of` for an array of counts at once (the hot path: one call per step, not per ticker)."""
    return np.maximum(0, (counts - window) // window * window)


@dataclass(frozen=True)
class Request:
    """Step ``ticker`` with ``inputs`` [steps, features] (the minutes after its stored state)."""

    ticker: str
    inputs: np.ndarray
    minute: int  # minute of the last input
    close: float  # its close
    store: bool  # a final bar: keep the new state


@torch.no_grad()
def full_pass(model: ForecastLSTM, inputs: np.ndarray) -> np.ndarray:
    """The reference: the network from zero over ``inputs`` [n, steps, features]; outputs [n, columns]."""
    model.eval()
    return model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()


class CarriedStates:
    """The carried states of every ticker a model serves, for one set of weights."""

    def __init__(self, model: ForecastLSTM, window: int) -> None:
        self.model = model
        self.window = window
        self.states: dict[str, Carried] = {}

    def zero_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A ticker's main and shadow states, both zero: ``[layers, 2, units]``."""
        shape = (self.model.layers, 2, self.model.units)
        return torch.zeros(shape), torch.zeros(shape)

    def zero(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.model.layers, count, self.model.units)
        return torch.zeros(shape), torch.zeros(shape)

    @torch.no_grad()
    def _run(
        self, inputs: np.ndarray, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h, c) = self.model.lstm(
            torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)), (h, c)
        )
        return out[:, -1, :], h, c

    @torch.no_grad()
    def step(self, requests: Sequence[Request]) -> dict[str, float]:
        """Advance the tickers' states by their inputs, all tickers in one batched step per input minute
        (main and shadow states together); return the scaled forecast of each ticker that has read at
        least ``window`` returns. States are stored only for requests with ``store``."""
        live = [r for r in requests if r.ticker in self.states and len(r.inputs)]
        if not live:
            return {}
        carried = [self.states[r.ticker] for r in live]
        h = torch.stack([s.h for s in carried], dim=1)  # [layers, n, 2, units]
        c = torch.stack([s.c for s in carried], dim=1)
        counts = np.array([s.returns_read() for s in carried])
        top = torch.zeros(len(live), self.model.units)
        lengths = np.array([len(r.inputs) for r in live])
        for j in range(int(lengths.max())):
            active = np.flatnonzero(lengths > j)
            idx = torch.from_numpy(active)
            before = counts[active].copy()
            anchors = anchors_of(before, self.window)
            # The shadow starts from zero at the anchor it reads from (``window`` after the main's).
            begins = idx[torch.from_numpy(before - anchors == self.window)]
            h[:, begins, 1] = 0.0
            c[:, begins, 1] = 0.0
            x = np.stack([live[i].inputs[j] for i in active])[:, None, :]
            m = len(active)
            h0 = torch.cat([h[:, idx, 0], h[:, idx, 1]], dim=1).contiguous()
            c0 = torch.cat([c[:, idx, 0], c[:, idx, 1]], dim=1).contiguous()
            out, hn, cn = self._run(np.concatenate([x, x]), h0, c0)
            h[:, idx, 0], h[:, idx, 1] = hn[:, :m], hn[:, m:]
            c[:, idx, 0], c[:, idx, 1] = cn[:, :m], cn[:, m:]
            top[idx] = out[:m]
            counts[active] = before + 1
            after = anchors_of(counts[active], self.window)
            swap = np.flatnonzero(after != anchors)
            if len(swap):
                # The shadow has read ``window`` returns: it becomes the main state, a new shadow waits.
                sidx = idx[torch.from_numpy(swap)]
                h[:, sidx, 0], c[:, sidx, 0] = h[:, sidx, 1], c[:, sidx, 1]
                top[sidx] = out[m:][torch.from_numpy(swap)]
        scaled = self.model.head(top).numpy()
        result: dict[str, float] = {}
        for i, (r, s) in enumerate(zip(live, carried, strict=True)):
            if counts[i] >= self.window:
                result[r.ticker] = float(scaled[i, 0])
            if r.store:
                s.h, s.c = h[:, i].clone(), c[:, i].clone()
                s.minute, s.close = r.minute, r.close
        return result

    @torch.no_grad()
    def prime(self, primers: dict[str, Primer]) -> None:
        """(Re)build the tickers' states, batched by length: one pass for the main states, one for the
        shadows (each from zero at its anchor)."""
        jobs: dict[int, list[tuple[str, np.ndarray]]] = {}
        for ticker, p in primers.items():
            count = p.minute - p.start
            length = count - anchor_of(count, self.window)
            if len(p.returns) < length:
                raise ValueError(f"{ticker}: {len(p.returns)} returns given, {length} needed from the anchor")
            self.states[ticker] = Carried(p.start, p.minute, p.close, *self.zero_pair())
            if length:
                jobs.setdefault(length, []).append((ticker, p.returns[len(p.returns) - length :]))
        for length, group in jobs.items():
            _, h, c = self._run(np.stack([r for _, r in group]), *self.zero(len(group)))
            shadow = length - self.window
            if shadow > 0:
                _, hs, cs = self._run(np.stack([r[-shadow:] for _, r in group]), *self.zero(len(group)))
            for i, (ticker, _) in enumerate(group):
                state = self.states[ticker]
                state.h[:, 0], state.c[:, 0] = h[:, i], c[:, i]
                if shadow > 0:
                    state.h[:, 1], state.c[:, 1] = hs[:, i], cs[:, i]


@dataclass(frozen=True)
class Primer:
    """What priming a ticker needs: its segment's start, the minute and close of its newest final bar, and
    at least the scaled returns [n, features] from the anchor to that bar (earlier ones are ignored)."""

    start: int
    minute: int
    close: float
    returns: np.ndarray
