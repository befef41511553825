"""Window-by-window training, the recipe before chunks (issue 12): every window its own sequence, shuffled
mini-batches, optional early stopping on the hold-out. The cold-training benchmark's baselines, and the
research bench's (``forecast_models.py``: its feature windows are not consecutive minutes of a series)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from services.trainer.model.network import predict
from services.trainer.model.training import FitReport


def fit_windows(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[np.ndarray, np.ndarray],
    holdout: tuple[np.ndarray, np.ndarray],
    *,
    max_epochs: int,
    patience: int | None,
    batch_size: int,
    epoch_windows: int | None,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> FitReport:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    hx, hy = holdout
    if epoch_windows is not None and len(hx) > epoch_windows:
        keep = np.sort(rng.choice(len(hx), epoch_windows, replace=False))
        hx, hy = hx[keep], hy[keep]
    report, best = FitReport(epochs=0, best_epoch=0), math.inf
    best_state = copy.deepcopy(model.state_dict())
    loss_fn = nn.MSELoss()
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(xt))[:epoch_windows])
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
            if should_stop is not None and should_stop():
                break
        report.epochs = epoch
        loss = float(np.mean((predict(model, hx) - hy) ** 2))
        report.holdout_losses.append(loss)
        if loss < best:
            best, report.best_epoch = loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - report.best_epoch >= patience:
            report.stopped_early = True
            break
        if should_stop is not None and should_stop():
            break
    if patience is not None:
        model.load_state_dict(best_state)
    report.seconds = time.perf_counter() - started
    return report
