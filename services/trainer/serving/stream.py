"""Carried LSTM state per ticker: a new bar costs one recurrent step, not a pass over the window. No I/O.

Each ticker's current segment (see ``series.py``: forward-filled minutes inside, a cut ends it) is read by
the network from an *anchor*: the state after the newest final bar is the LSTM run from zero over the
scaled returns from the anchor to that bar. The anchors lie every ``window`` returns from the segment's
start, and the network reads from the one that leaves between ``window`` and ``2 window - 1`` returns, so
the context stays bounded while a second ("shadow") state, started at the next anchor, is carried beside
the main one and takes over when it has read ``window`` returns. Both are stepped together, so no bar
ever pays for a pass over the window, and every forecast equals one full pass of the installed network over
the returns from its anchor (tested against that full pass, ``tests/unit/trainer/oracles.py``).

* A final bar steps the state (with the forward-filled minutes before it, if any) and stores it.
* A provisional bar is forecast from the stored state without storing: a revision is never stepped twice.
* Fewer than ``window`` returns since the segment's start: no forecast (the naive stand-in serves).
* New weights: every state is recomputed (:meth:`CarriedStates.prime`) on the training thread.

Inputs are ``[steps, features]`` per ticker (one feature today, the scaled log return), so richer inputs
per minute only widen the last axis.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from services.trainer.model.network import ForecastLSTM

# Batch sizes the LSTM is run at are multiples of this (see CarriedStates._run).
ROW_BUCKET = 64


@dataclass
class Carried:
    """One ticker's carried state: where its segment starts, what was last stepped, its row in the tensors."""

    start: int  # minute of the segment's first close
    minute: int  # minute of the newest final close stepped
    close: float  # that close
    row: int = -1

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


class Request(NamedTuple):
    """Step ``ticker`` with ``inputs`` [steps, features] (the minutes after its stored state). A NamedTuple:
    one per ticker a minute, built far faster than a frozen dataclass."""

    ticker: str
    inputs: np.ndarray
    minute: int  # minute of the last input
    close: float  # its close
    store: bool  # a final bar: keep the new state


class StateTable(MutableMapping[str, Carried]):
    """Ticker -> :class:`Carried`; removing a ticker (a cut, a revoked partition) frees its row."""

    def __init__(self, owner: CarriedStates) -> None:
        self._owner = owner
        self._by_ticker: dict[str, Carried] = {}

    def __getitem__(self, ticker: str) -> Carried:
        return self._by_ticker[ticker]

    # Mapping's own ``get`` and ``in`` go through __getitem__ and an exception; these are called per ticker
    # per minute.
    def get(self, ticker: str, default: Carried | None = None) -> Carried | None:  # type: ignore[override]
        return self._by_ticker.get(ticker, default)

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._by_ticker

    def __setitem__(self, ticker: str, state: Carried) -> None:
        old = self._by_ticker.get(ticker)
        if old is not None and old.row != state.row:
            self._owner.free(old.row)
        self._by_ticker[ticker] = state

    def __delitem__(self, ticker: str) -> None:
        self._owner.free(self._by_ticker.pop(ticker).row)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_ticker)

    def __len__(self) -> int:
        return len(self._by_ticker)


class CarriedStates:
    """The carried states of every ticker a model serves, for one set of weights.

    All states live in two preallocated tensors ``h``, ``c`` of shape ``[layers, 2, rows, units]`` (index 0
    along the second axis the main state, 1 the shadow), a ticker owning one row; rows are reused after a
    ticker leaves and the tensors double when full. A step gathers the rows it needs with one index and
    scatters the stored ones back with one: stacking a tensor per ticker every step cost as much as the
    LSTM call itself at 2,000 tickers (profile in issue 12)."""

    def __init__(self, model: ForecastLSTM, window: int, rows: int = 64) -> None:
        self.model = model
        self.window = window
        self.states = StateTable(self)
        shape = (model.layers, 2, rows, model.units)
        self.h, self.c = torch.zeros(shape), torch.zeros(shape)
        self._free = list(range(rows - 1, -1, -1))

    def allocate(self) -> int:
        if not self._free:
            rows = self.h.shape[2]
            self.h = torch.cat([self.h, torch.zeros_like(self.h)], dim=2)
            self.c = torch.cat([self.c, torch.zeros_like(self.c)], dim=2)
            self._free = list(range(2 * rows - 1, rows - 1, -1))
        row = self._free.pop()
        self.h[:, :, row] = 0.0
        self.c[:, :, row] = 0.0
        return row

    def free(self, row: int) -> None:
        if row >= 0:
            self._free.append(row)

    def zero(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.model.layers, count, self.model.units)
        return torch.zeros(shape), torch.zeros(shape)

    @torch.no_grad()
    def _run(
        self, inputs: np.ndarray, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The LSTM over ``inputs`` [n, steps, features] from (h, c) [layers, n, units], the rows padded with
        zeros to a multiple of :data:`ROW_BUCKET`: the CPU kernels are built per batch size, ~3 ms for a size
        not seen before, and a live minute's polls bring a new count of tickers each time (rows are
        independent: padding changes no real row beyond float rounding)."""
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        n = x.shape[0]
        pad = -n % ROW_BUCKET
        if pad:
            x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
            h = torch.cat([h, h.new_zeros((h.shape[0], pad, h.shape[2]))], dim=1)
            c = torch.cat([c, c.new_zeros((c.shape[0], pad, c.shape[2]))], dim=1)
        out, (h, c) = self.model.lstm(x, (h, c))
        if pad:
            return out[:n, -1, :], h[:, :n].contiguous(), c[:, :n].contiguous()
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
        n, layers, units = len(live), self.model.layers, self.model.units
        rows = torch.tensor([s.row for s in carried])
        h, c = self.h.index_select(2, rows), self.c.index_select(2, rows)  # [layers, 2, n, units], copies
        counts = np.array([s.minute for s in carried]) - np.array([s.start for s in carried])
        lengths = np.array([len(r.inputs) for r in live])
        if lengths.max() == 1:  # the live case: one new bar per ticker
            inputs = np.concatenate([r.inputs for r in live])[:, None, :]
        else:
            inputs = np.zeros((n, int(lengths.max()), live[0].inputs.shape[1]), np.float32)
            for i, r in enumerate(live):
                inputs[i, : len(r.inputs)] = r.inputs
        top = torch.zeros(n, units)
        for j in range(int(lengths.max())):
            active = np.flatnonzero(lengths > j)
            everyone = len(active) == n
            idx = torch.from_numpy(active)
            before = counts[active]
            anchors = anchors_of(before, self.window)
            # The shadow starts from zero at the anchor it reads from (``window`` after the main's).
            begins = idx[torch.from_numpy(before - anchors == self.window)]
            h[:, 1, begins] = 0.0
            c[:, 1, begins] = 0.0
            x = inputs[active, j][:, None, :]
            m = len(active)
            # Main states first, then shadows: [layers, 2, m, units] -> [layers, 2m, units].
            h0 = (h if everyone else h[:, :, idx]).reshape(layers, 2 * m, units)
            c0 = (c if everyone else c[:, :, idx]).reshape(layers, 2 * m, units)
            out, hn, cn = self._run(np.concatenate([x, x]), h0, c0)
            if everyone:
                h, c = hn.view(layers, 2, m, units), cn.view(layers, 2, m, units)
            else:
                h[:, :, idx], c[:, :, idx] = hn.view(layers, 2, m, units), cn.view(layers, 2, m, units)
            top[idx] = out[:m]
            counts[active] = before + 1
            after = anchors_of(counts[active], self.window)
            swap = np.flatnonzero(after != anchors)
            if len(swap):
                # The shadow has read ``window`` returns: it becomes the main state, a new shadow waits.
                sidx = idx[torch.from_numpy(swap)]
                h[:, 0, sidx], c[:, 0, sidx] = h[:, 1, sidx], c[:, 1, sidx]
                top[sidx] = out[m:][torch.from_numpy(swap)]
        scaled = self.model.head(top).numpy()[:, 0].tolist()
        ready = (counts >= self.window).tolist()
        result = {r.ticker: scaled[i] for i, r in enumerate(live) if ready[i]}
        stored = [i for i, r in enumerate(live) if r.store]
        if stored:
            self._store(rows, h, c, stored)
            for i in stored:
                carried[i].minute, carried[i].close = live[i].minute, live[i].close
        return result

    def _store(self, rows: torch.Tensor, h: torch.Tensor, c: torch.Tensor, stored: list[int]) -> None:
        """Keep the ``stored`` ones of the stepped states (``rows``: their rows, one per ticker): index_copy_,
        not indexed assignment, half the time at 500 tickers."""
        if len(stored) < len(rows):
            keep = torch.tensor(stored)
            rows, h, c = rows[keep], h.index_select(2, keep), c.index_select(2, keep)
        self.h.index_copy_(2, rows, h)
        self.c.index_copy_(2, rows, c)

    @torch.no_grad()
    def prime(self, primers: dict[str, Primer]) -> None:
        """(Re)build the tickers' states, batched by length: one pass for the main states, one for the
        shadows (each from zero at its anchor)."""
        jobs: dict[int, list[tuple[int, np.ndarray]]] = {}
        for ticker, p in primers.items():
            count = p.minute - p.start
            length = count - anchor_of(count, self.window)
            if len(p.returns) < length:
                raise ValueError(f"{ticker}: {len(p.returns)} returns given, {length} needed from the anchor")
            old = self.states.get(ticker)
            row = old.row if old is not None else self.allocate()
            if old is not None:
                self.h[:, :, row], self.c[:, :, row] = 0.0, 0.0
            self.states[ticker] = Carried(p.start, p.minute, p.close, row)
            if length:
                jobs.setdefault(length, []).append((row, p.returns[len(p.returns) - length :]))
        for length, group in jobs.items():
            rows = torch.tensor([row for row, _ in group])
            _, h, c = self._run(np.stack([r for _, r in group]), *self.zero(len(group)))
            self.h[:, 0, rows], self.c[:, 0, rows] = h, c
            shadow = length - self.window
            if shadow > 0:
                _, hs, cs = self._run(np.stack([r[-shadow:] for _, r in group]), *self.zero(len(group)))
                self.h[:, 1, rows], self.c[:, 1, rows] = hs, cs


@dataclass(frozen=True)
class Primer:
    """What priming a ticker needs: its segment's start, the minute and close of its newest final bar, and
    at least the scaled returns [n, features] from the anchor to that bar (earlier ones are ignored)."""

    start: int
    minute: int
    close: float
    returns: np.ndarray
