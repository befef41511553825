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

from services.trainer.model import ForecastLSTM, predict


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


def _loss(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    if not len(x):
        return math.nan
    return float(np.mean((predict(model, x) - y) ** 2))


def fit(
    model: ForecastLSTM,
    optimizer: torch.optim.Optimizer,
    train_x: np.ndarray,
    train_y: np.ndarray,
    holdout_x: np.ndarray,
    holdout_y: np.ndarray,
    *,
    max_epochs: int,
    patience: int | None,
    batch_size: int,
    seed: int = 0,
    should_stop: object = None,
    epoch_windows: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FitReport:
    """Train up to ``max_epochs`` on shuffled mini-batches; with ``patience``, stop when the hold-out loss
    has not improved for that many epochs and keep the best weights (None: run every epoch, as the original
    recipe did). ``should_stop()`` (optional) ends training between batches (shutdown). ``epoch_windows``
    caps the windows drawn per epoch (a fresh random sample each epoch) and the hold-out windows scored.
    ``on_epoch(epoch, holdout_loss)`` (optional) reports progress, e.g. to a progress bar."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(train_x), torch.from_numpy(train_y)
    if epoch_windows is not None and len(holdout_x) > epoch_windows:
        keep = np.sort(rng.choice(len(holdout_x), epoch_windows, replace=False))
        holdout_x, holdout_y = holdout_x[keep], holdout_y[keep]
    report = FitReport(epochs=0, best_epoch=0)
    best = math.inf
    best_state = copy.deepcopy(model.state_dict())
    loss_fn = nn.MSELoss()
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt))[:epoch_windows])
        total, batches = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
            if callable(should_stop) and should_stop():
                break
        report.epochs = epoch
        report.train_losses.append(total / max(batches, 1))
        holdout = _loss(model, holdout_x, holdout_y)
        report.holdout_losses.append(holdout)
        if on_epoch is not None:
            on_epoch(epoch, holdout)
        if holdout < best:
            best, report.best_epoch = holdout, epoch
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
    model: ForecastLSTM, optimizer: torch.optim.Optimizer, x: np.ndarray, y: np.ndarray, steps: int
) -> float:
    """``steps`` optimizer steps on the newest windows (one batch); return the last loss (nan: no data)."""
    if not len(x) or steps <= 0:
        return math.nan
    model.train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = nn.MSELoss()
    value = math.nan
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        optimizer.step()
        value = loss.item()
    return value
