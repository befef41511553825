"""Cold-start fitting with early stopping, and warm-start updates on the newest windows. No I/O."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from services.trainer.model.chunks import Chunks, chunk, chunk_loss
from services.trainer.model.network import ForecastLSTM
from services.trainer.model.windows import Examples


@dataclass
class FitReport:
    epochs: int
    best_epoch: int
    train_losses: list[float] = field(default_factory=list)
    holdout_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def make_optimizer(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=learning_rate)


def _loss(model: ForecastLSTM, chunks: Chunks, batch: int = 512) -> float:
    """Mean squared error over every scored position of ``chunks`` (nan: none)."""
    if not len(chunks):
        return math.nan
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for part in chunks.batches(batch):
            n = int(part.targets.sum()) * part.y.shape[-1]
            total += float(chunk_loss(model, part)) * n
            count += n
    return total / count if count else math.nan


def _first(chunks: Chunks, order: np.ndarray, windows: int | None) -> np.ndarray:
    """The leading chunks of ``order`` that hold ``windows`` forecasts (all of them: None)."""
    if windows is None:
        return order
    reached = np.cumsum(chunks.targets[order]) >= windows
    return order[: int(np.argmax(reached)) + 1] if reached.any() else order


def fit(  # noqa: PLR0913 (the training recipe's knobs, passed by keyword)
    model: ForecastLSTM,
    optimizer: torch.optim.Optimizer,
    train: Examples,
    holdout: Examples,
    *,
    window: int,
    max_epochs: int,
    patience: int | None,
    batch_size: int,
    seed: int = 0,
    should_stop: object = None,
    epoch_windows: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FitReport:
    """Train up to ``max_epochs`` on shuffled mini-batches of chunks (``chunks.py``: consecutive windows
    read as one sequence, a fresh chunk grid each epoch); with ``patience``, stop when the hold-out loss
    has not improved for that many epochs and keep the best weights (None: run every epoch). A batch holds
    about ``batch_size`` forecasts. ``should_stop()`` (optional) ends training between batches (shutdown).
    ``epoch_windows`` caps the forecasts trained on per epoch (a fresh random sample each epoch) and those
    scored for the hold-out loss. ``on_epoch(epoch, holdout_loss)`` (optional) reports progress."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    held = chunk(holdout, window)
    held = held.take(np.sort(_first(held, rng.permutation(len(held)), epoch_windows)))
    per_batch = max(1, -(-batch_size // window))
    report = FitReport(epochs=0, best_epoch=0)
    best = math.inf
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, max_epochs + 1):
        model.train()
        chunks = chunk(train, window, phase=int(rng.integers(window)))
        order = _first(chunks, rng.permutation(len(chunks)), epoch_windows)
        total, batches = 0.0, 0
        for i in range(0, len(order), per_batch):
            optimizer.zero_grad(set_to_none=True)
            loss = chunk_loss(model, chunks.take(order[i : i + per_batch]))
            loss.backward()  # type: ignore[no-untyped-call]  # torch types Tensor.backward loosely
            optimizer.step()
            total += loss.item()
            batches += 1
            if callable(should_stop) and should_stop():
                break
        report.epochs = epoch
        report.train_losses.append(total / max(batches, 1))
        holdout_loss = _loss(model, held)
        report.holdout_losses.append(holdout_loss)
        if on_epoch is not None:
            on_epoch(epoch, holdout_loss)
        if holdout_loss < best:
            best, report.best_epoch = holdout_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - report.best_epoch >= patience:
            report.stopped_early = True
            break
        if callable(should_stop) and should_stop():
            break
    if patience is not None:
        model.load_state_dict(best_state)
    report.seconds = time.perf_counter() - started
    return report


def warm_update(
    model: ForecastLSTM, optimizer: torch.optim.Optimizer, newest: Examples, window: int, steps: int
) -> float:
    """``steps`` optimizer steps on the newest windows (one batch of chunks); the last loss (nan: no data)."""
    if not len(newest) or steps <= 0:
        return math.nan
    model.train()
    chunks = chunk(newest, window)
    value = math.nan
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = chunk_loss(model, chunks)
        loss.backward()  # type: ignore[no-untyped-call]  # torch types Tensor.backward loosely
        optimizer.step()
        value = loss.item()
    return value
