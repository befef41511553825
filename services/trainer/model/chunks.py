"""Consecutive windows read as one sequence ("chunk"), for training and scoring at a fraction of the cost.

A window of ``w`` values and its target cost the LSTM ``w`` steps for one forecast. ``w`` consecutive
windows of one segment share all but their ends: read as one sequence of ``2w - 1`` values, the net's
output after each of the last ``w`` positions is the forecast of the next value, from a context of ``w`` to
``2w - 1`` values. That is exactly how the carried states serve (``stream.py``: the net reads between
``window`` and ``2 window - 1`` returns back from an anchor), so the network is trained and scored on the
contexts it forecasts from, for about 1/30 of the steps of window-by-window training.

Chunks are cut at every multiple of ``w`` of a window's position in its segment (shifted by ``phase``): at
phase 0 they line up with the serving anchors. A run shorter than ``w`` windows (a short segment, the end
of one) gives a short chunk, padded at its end: the LSTM is causal, so padding never changes an output
that is scored (``mask``). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from services.trainer.model.network import ForecastLSTM
from services.trainer.model.windows import Examples


@dataclass
class Chunks:
    x: np.ndarray  # [n, 2w - 1, columns] inputs, zero after a short chunk's end
    y: np.ndarray  # [n, 2w - 1, columns] the target forecast at each position (zero where not masked)
    mask: np.ndarray  # [n, 2w - 1] bool: positions whose output is a window's forecast
    index: np.ndarray  # [n, 2w - 1] the window (row of the Examples) each masked position forecasts; -1 else

    def __len__(self) -> int:
        return len(self.x)

    @property
    def targets(self) -> np.ndarray:
        """Forecasts per chunk."""
        counts: np.ndarray = self.mask.sum(axis=1)
        return counts

    def take(self, rows: np.ndarray) -> Chunks:
        return Chunks(self.x[rows], self.y[rows], self.mask[rows], self.index[rows])

    def batches(self, size: int) -> Iterator[Chunks]:
        """Consecutive parts of at most ``size`` chunks (a forward pass each, bounded memory)."""
        for i in range(0, len(self), size):
            yield Chunks(
                self.x[i : i + size], self.y[i : i + size], self.mask[i : i + size], self.index[i : i + size]
            )


def chunk(examples: Examples, window: int, phase: int = 0) -> Chunks:
    """The chunks that forecast every window of ``examples`` once. Windows of one run (``examples.run``)
    are consecutive minutes of one segment, ``examples.pos`` their position in it."""
    n, columns = len(examples), examples.y.shape[1]
    length = 2 * window - 1
    if not n:
        empty = np.zeros((0, length, columns), np.float32)
        return Chunks(empty, empty.copy(), np.zeros((0, length), bool), np.zeros((0, length), np.int64))
    piece = (examples.pos + phase) // window
    new = np.ones(n, bool)
    new[1:] = (
        (examples.run[1:] != examples.run[:-1])
        | (piece[1:] != piece[:-1])
        | (examples.pos[1:] != examples.pos[:-1] + 1)
    )
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))  # windows per chunk, 1..window
    x = np.zeros((len(starts), length, columns), np.float32)
    y = np.zeros_like(x)
    mask = np.zeros((len(starts), length), bool)
    index = np.full((len(starts), length), -1, np.int64)
    x[:, :window] = examples.x[starts]
    # Input position window + j is the value after window start + j, i.e. that window's target.
    lead = np.arange(window - 1)
    take = lead[None, :] < (counts - 1)[:, None]
    rows = (starts[:, None] + lead[None, :])[take]
    x[:, window:][take] = examples.y[rows]
    # The output at position window - 1 + j forecasts window start + j.
    ahead = np.arange(window)
    scored = ahead[None, :] < counts[:, None]
    rows = (starts[:, None] + ahead[None, :])[scored]
    y[:, window - 1 :][scored] = examples.y[rows]
    mask[:, window - 1 :] = scored
    index[:, window - 1 :][scored] = rows
    return Chunks(x, y, mask, index)


def chunk_loss(model: ForecastLSTM, chunks: Chunks) -> torch.Tensor:
    """Mean squared error over the scored positions (the same number window-by-window training averages)."""
    out = model.forward_all(torch.from_numpy(chunks.x))
    weight = torch.from_numpy(chunks.mask).unsqueeze(-1).to(out.dtype)
    squared = (out - torch.from_numpy(chunks.y)) ** 2 * weight
    return squared.sum() / (weight.sum() * out.shape[-1]).clamp(min=1.0)


@torch.no_grad()
def predict_windows(model: ForecastLSTM, examples: Examples, window: int, batch: int = 512) -> np.ndarray:
    """The model's output for every window of ``examples`` [n, columns], read in chunks (contexts of
    ``window`` to ``2 window - 1`` values, as served)."""
    model.eval()
    out = np.zeros((len(examples), examples.y.shape[1]), np.float32)
    for part in chunk(examples, window).batches(batch):
        values = model.forward_all(torch.from_numpy(part.x)).numpy()
        out[part.index[part.mask]] = values[part.mask]
    return out
